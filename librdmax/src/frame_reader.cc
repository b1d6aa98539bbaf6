#include "frame_reader.h"

#include <cstring>
#include <utility>

namespace ssihv::rdmax {

FrameReader::FrameReader(FrameLimits limits, size_t capacity, WirePhase phase)
    : limits_(limits),
      phase_(phase),
      buf_(new uint8_t[capacity]),
      capacity_(capacity) {}

FrameReader::Result FrameReader::Fail(absl::Status status) {
  error_ = std::move(status);
  return Result::kError;
}

void FrameReader::Compact(size_t need) {
  if (head_ == tail_) {
    head_ = tail_ = 0;
    return;
  }
  if (head_ > 0 && capacity_ - head_ < need) {
    std::memmove(buf_.get(), buf_.get() + head_, tail_ - head_);
    tail_ -= head_;
    head_ = 0;
  }
}

int FrameReader::PrepareRead(struct iovec* iov) {
  head_ += std::exchange(consumed_on_next_, 0);
  Compact(state_ == State::kBody ? current_.length : kFrameHeaderSize);
  if (tail_ == capacity_) return 0;
  iov[0] = {buf_.get() + tail_, capacity_ - tail_};
  return 1;
}

void FrameReader::Commit(size_t n) { tail_ += n; }

FrameReader::Result FrameReader::Next(FrameSink& sink, Frame* frame) {
  if (!error_.ok()) return Result::kError;
  head_ += std::exchange(consumed_on_next_, 0);
  for (;;) {
    switch (state_) {
      case State::kHeader: {
        if (tail_ - head_ < kFrameHeaderSize) {
          if (head_ == tail_) head_ = tail_ = 0;
          return Result::kNeedMore;
        }
        absl::StatusOr<FrameHeader> h = DecodeFrameHeader(
            absl::MakeConstSpan(buf_.get() + head_, kFrameHeaderSize), phase_,
            limits_);
        if (!h.ok()) return Fail(h.status());
        if (!sink.MayConsume(*h)) return Result::kYield;
        head_ += kFrameHeaderSize;
        current_ = *h;
        state_ = State::kBody;
        break;
      }
      case State::kBody:
        if (tail_ - head_ < current_.length) return Result::kNeedMore;
        frame->header = current_;
        frame->payload =
            absl::MakeConstSpan(buf_.get() + head_, current_.length);
        consumed_on_next_ = current_.length;
        state_ = State::kHeader;
        return Result::kFrame;
    }
  }
}

}  // namespace ssihv::rdmax
