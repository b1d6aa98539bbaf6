#include "frame_reader.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

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
  int n = 0;
  direct_want_ = 0;
  if (state_ == State::kDirect) {
    direct_want_ = current_.length - direct_done_;
    iov[n++] = {direct_dst_ + direct_done_, direct_want_};
    Compact(kFrameHeaderSize);
  } else {
    Compact(state_ == State::kBody ? current_.length : kFrameHeaderSize);
  }
  if (tail_ < capacity_) iov[n++] = {buf_.get() + tail_, capacity_ - tail_};
  return n;
}

int FrameReader::PrepareSpeculativeRead(struct iovec* iov, uint64_t id,
                                        uint8_t* dst, uint32_t length) {
  head_ += std::exchange(consumed_on_next_, 0);
  if (state_ != State::kHeader || head_ != tail_ ||
      phase_ != WirePhase::kEstablished ||
      capacity_ < 2 * kFrameHeaderSize + size_t{length}) {
    return 0;
  }
  head_ = tail_ = 0;
  speculating_ = true;
  spec_id_ = id;
  spec_dst_ = dst;
  spec_len_ = length;
  iov[0] = {spec_header_, kFrameHeaderSize};
  iov[1] = {dst, length};
  iov[2] = {buf_.get(), capacity_ - kFrameHeaderSize - length};
  return 3;
}

void FrameReader::UndoSpeculation(size_t n) {
  // The stream is header bytes, then destination bytes, then buffer bytes:
  // make it contiguous in the buffer again.
  size_t h = std::min(n, kFrameHeaderSize);
  size_t d = std::min(n - h, size_t{spec_len_});
  size_t r = n - h - d;
  if (r > 0) std::memmove(buf_.get() + h + d, buf_.get(), r);
  std::memcpy(buf_.get(), spec_header_, h);
  if (d > 0) std::memcpy(buf_.get() + h, spec_dst_, d);
  head_ = 0;
  tail_ = n;
}

void FrameReader::Commit(size_t n) {
  if (speculating_) {
    speculating_ = false;
    if (n >= kFrameHeaderSize) {
      absl::StatusOr<FrameHeader> h = DecodeFrameHeader(
          absl::MakeConstSpan(spec_header_, kFrameHeaderSize), phase_, limits_);
      if (h.ok() && h->kind == FrameKind::kFetchResponse &&
          (h->flags & kFlagError) == 0 && h->id == spec_id_ &&
          h->length == spec_len_) {
        current_ = *h;
        direct_dst_ = spec_dst_;
        direct_done_ = static_cast<uint32_t>(
            std::min(n - kFrameHeaderSize, size_t{spec_len_}));
        tail_ = n - kFrameHeaderSize - direct_done_;
        state_ = State::kDirect;
        spec_check_pending_ = true;
        return;
      }
    }
    UndoSpeculation(n);
    return;
  }
  size_t to_direct = std::min(n, direct_want_);
  direct_done_ += static_cast<uint32_t>(to_direct);
  direct_want_ = 0;
  tail_ += n - to_direct;
}

FrameReader::Result FrameReader::Next(FrameSink& sink, Frame* frame) {
  if (!error_.ok()) return Result::kError;
  head_ += std::exchange(consumed_on_next_, 0);
  if (spec_check_pending_) {
    // The speculative read already matched header and length; the sink
    // still confirms the fetch is pending and that this is its buffer.
    spec_check_pending_ = false;
    absl::StatusOr<uint8_t*> target =
        sink.FetchTarget(current_.id, current_.length);
    if (!target.ok()) return Fail(target.status());
    if (*target != direct_dst_) {
      return Fail(absl::InternalError("speculative read: buffer mismatch"));
    }
  }
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
        if (h->kind == FrameKind::kFetchResponse &&
            (h->flags & kFlagError) == 0) {
          absl::StatusOr<uint8_t*> target = sink.FetchTarget(h->id, h->length);
          if (!target.ok()) return Fail(target.status());
          direct_dst_ = *target;
          size_t avail = std::min(tail_ - head_, size_t{h->length});
          if (avail > 0) std::memcpy(direct_dst_, buf_.get() + head_, avail);
          head_ += avail;
          direct_done_ = static_cast<uint32_t>(avail);
          state_ = State::kDirect;
        } else {
          state_ = State::kBody;
        }
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
      case State::kDirect:
        if (direct_done_ < current_.length) return Result::kNeedMore;
        frame->header = current_;
        frame->payload = {};
        direct_dst_ = nullptr;
        direct_done_ = 0;
        state_ = State::kHeader;
        return Result::kFrame;
    }
  }
}

}  // namespace ssihv::rdmax
