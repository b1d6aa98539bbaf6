// Incremental decoder of a byte stream of frames (the TCP data connection),
// independent of sockets so that the fuzzer drives exactly the code the
// connection runs. The owner asks where the next bytes should go
// (PrepareRead), reads into those iovecs with one syscall, reports how many
// arrived (Commit) and takes complete frames (Next).
#ifndef SSIHV_RDMAX_FRAME_READER_H_
#define SSIHV_RDMAX_FRAME_READER_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::rdmax {

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  /// Whether the reader may consume the frame with this (validated) header
  /// now. False leaves it buffered and Next() returns kYield: a thread that
  /// may not handle it (a caller reading only its own response) or
  /// backpressure (no room to answer a request).
  virtual bool MayConsume(const FrameHeader& header) = 0;
};

struct Frame {
  FrameHeader header;
  /// The payload in the reader's buffer, valid until the next call on the
  /// reader.
  absl::Span<const uint8_t> payload;
};

class FrameReader {
 public:
  enum class Result { kFrame, kNeedMore, kYield, kError };

  /// `capacity` must hold the largest buffered frame (header + max message).
  FrameReader(FrameLimits limits, size_t capacity, WirePhase phase);

  void set_phase(WirePhase phase) { phase_ = phase; }
  const FrameLimits& limits() const { return limits_; }

  /// Fills the iovec for the next read; returns how many (1, or 0: the
  /// buffer is full of frames not yet consumed, stop reading).
  int PrepareRead(struct iovec* iov);
  /// Accounts for `n` bytes received into the iovec of the last PrepareRead.
  void Commit(size_t n);

  /// The next complete frame, or why there is none. kError leaves the
  /// status in error(); the connection must then be closed.
  Result Next(FrameSink& sink, Frame* frame);
  const absl::Status& error() const { return error_; }

  /// True when bytes are buffered that Next() has not consumed.
  bool HasBuffered() const { return tail_ > head_; }

 private:
  enum class State { kHeader, kBody };

  Result Fail(absl::Status status);
  void Compact(size_t need);

  FrameLimits limits_;
  WirePhase phase_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t capacity_;
  size_t head_ = 0;              // first unconsumed byte
  size_t tail_ = 0;              // one past the last received byte
  size_t consumed_on_next_ = 0;  // payload handed out, dropped on next call
  State state_ = State::kHeader;
  FrameHeader current_{};
  absl::Status error_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_FRAME_READER_H_
