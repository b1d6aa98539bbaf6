// Incremental decoder of a byte stream of frames (the TCP data connection),
// independent of sockets so that the fuzzer drives exactly the code the
// connection runs. The owner asks where the next bytes should go
// (PrepareRead), reads into those iovecs with one syscall, reports how many
// arrived (Commit) and takes complete frames (Next).
//
// Fetch-response payloads are not buffered: when their header is decoded
// the sink names the destination (the fetching caller's buffer) and the
// payload is received straight into it. A caller waiting for exactly one
// fetch response can even read header and payload with a single recvmsg
// (PrepareSpeculativeRead): if what arrives is something else, the bytes are
// moved back into the stream buffer and decoding continues as usual.
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
  /// Destination of a successful fetch response's payload: the buffer of
  /// the pending fetch `id`. An error when no such fetch is pending or its
  /// length differs (a protocol violation: the connection is closed).
  virtual absl::StatusOr<uint8_t*> FetchTarget(uint64_t id,
                                               uint32_t length) = 0;
};

struct Frame {
  FrameHeader header;
  /// The payload in the reader's buffer, valid until the next call on the
  /// reader. Empty for a fetch response whose bytes went to FetchTarget.
  absl::Span<const uint8_t> payload;
};

class FrameReader {
 public:
  enum class Result { kFrame, kNeedMore, kYield, kError };

  /// `capacity` must hold the largest buffered frame (header + max message).
  FrameReader(FrameLimits limits, size_t capacity, WirePhase phase);

  void set_phase(WirePhase phase) { phase_ = phase; }
  const FrameLimits& limits() const { return limits_; }

  /// Fills up to 2 iovecs for the next read; returns how many (0: the
  /// buffer is full of frames not yet consumed, stop reading).
  int PrepareRead(struct iovec* iov);
  /// Like PrepareRead (3 iovecs), for a thread expecting the fetch response
  /// `id` of `length` bytes into `dst`: header and payload in one read. Returns
  /// 0 (do a plain PrepareRead) when the reader is mid-frame or has buffered
  /// bytes, or when the buffer could not take the bytes back on a miss.
  int PrepareSpeculativeRead(struct iovec* iov, uint64_t id, uint8_t* dst,
                             uint32_t length);
  /// Accounts for `n` bytes received into the iovecs of the last Prepare*.
  void Commit(size_t n);

  /// The next complete frame, or why there is none. kError leaves the
  /// status in error(); the connection must then be closed.
  Result Next(FrameSink& sink, Frame* frame);
  const absl::Status& error() const { return error_; }

  /// True when bytes are buffered beyond the frame Next() returned last
  /// (whose payload stays in the buffer until the next call), or a fetch
  /// response's payload is partly received.
  bool HasBuffered() const {
    return tail_ > head_ + consumed_on_next_ || state_ == State::kDirect;
  }

 private:
  enum class State { kHeader, kBody, kDirect };

  Result Fail(absl::Status status);
  void Compact(size_t need);
  void UndoSpeculation(size_t n);

  FrameLimits limits_;
  WirePhase phase_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t capacity_;
  size_t head_ = 0;              // first unconsumed byte
  size_t tail_ = 0;              // one past the last received byte
  size_t consumed_on_next_ = 0;  // payload handed out, dropped on next call
  State state_ = State::kHeader;
  FrameHeader current_{};
  uint8_t* direct_dst_ = nullptr;
  uint32_t direct_done_ = 0;
  // Speculative read in progress (between Prepare and Commit).
  bool speculating_ = false;
  bool spec_check_pending_ = false;
  uint64_t spec_id_ = 0;
  uint8_t* spec_dst_ = nullptr;
  uint32_t spec_len_ = 0;
  uint8_t spec_header_[kFrameHeaderSize];
  // Last PrepareRead split (kDirect): bytes for the destination first.
  size_t direct_want_ = 0;
  absl::Status error_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_FRAME_READER_H_
