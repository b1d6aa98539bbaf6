// The RDMA backend's authenticated TCP control connection to one peer,
// after the handshake: QP parameters and "ready" go over it, and its end
// of file is how a peer's restart or death is noticed. Data-thread only;
// frames are small, so a blocking-free write with a small queue suffices.
#ifndef SSIHV_RDMAX_RDMA_CONTROL_STREAM_H_
#define SSIHV_RDMAX_RDMA_CONTROL_STREAM_H_

#include <functional>

#include "absl/status/status.h"
#include "frame_reader.h"
#include "ssihv/base/unique_fd.h"
#include "tcp/byte_ring.h"

namespace ssihv::rdmax {

class ControlStream : private FrameSink {
 public:
  ControlStream(base::UniqueFd fd, const FrameLimits& limits);

  int fd() const { return fd_.get(); }
  /// Queues a frame; the error is a broken connection.
  absl::Status Send(FrameKind kind, const std::vector<uint8_t>& payload,
                    uint64_t id = 0, uint8_t flags = 0);
  /// Reads what is available, calling `on_frame` for each frame. An error
  /// (end of file, malformed frame) means the connection is finished.
  absl::Status OnReadable(
      const std::function<absl::Status(const Frame&)>& on_frame);
  /// Flushes queued bytes; returns whether EPOLLOUT is still needed.
  absl::StatusOr<bool> OnWritable();
  bool wants_write() const { return !out_.empty(); }
  void Shutdown();

 private:
  bool MayConsume(const FrameHeader&) override { return true; }
  absl::StatusOr<uint8_t*> FetchTarget(uint64_t, uint32_t) override {
    return absl::InvalidArgumentError("no fetches on the control connection");
  }

  base::UniqueFd fd_;
  FrameReader reader_;
  ByteRing out_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_CONTROL_STREAM_H_
