// A fixed-capacity byte FIFO (the user-space part of a connection's send
// queue): allocated once, written from iovecs, drained with writev.
#ifndef SSIHV_RDMAX_TCP_BYTE_RING_H_
#define SSIHV_RDMAX_TCP_BYTE_RING_H_

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

namespace ssihv::rdmax {

class ByteRing {
 public:
  explicit ByteRing(size_t capacity)
      : buf_(new uint8_t[capacity]), capacity_(capacity) {}

  size_t size() const { return size_; }
  size_t free() const { return capacity_ - size_; }
  bool empty() const { return size_ == 0; }

  /// Appends the bytes of `iov` after skipping the first `skip` of them.
  /// The caller checked free().
  void Append(const struct iovec* iov, int count, size_t skip) {
    for (int i = 0; i < count; ++i) {
      const uint8_t* p = static_cast<const uint8_t*>(iov[i].iov_base);
      size_t n = iov[i].iov_len;
      if (skip >= n) {
        skip -= n;
        continue;
      }
      p += skip;
      n -= skip;
      skip = 0;
      Put(p, n);
    }
  }

  /// Up to two iovecs covering the queued bytes, oldest first.
  int Segments(struct iovec* out) const {
    if (size_ == 0) return 0;
    size_t first = std::min(size_, capacity_ - head_);
    out[0] = {buf_.get() + head_, first};
    if (first == size_) return 1;
    out[1] = {buf_.get(), size_ - first};
    return 2;
  }

  /// Copies the first `n` queued bytes to `out` without consuming them.
  void Peek(uint8_t* out, size_t n) const {
    size_t first = std::min(n, capacity_ - head_);
    std::memcpy(out, buf_.get() + head_, first);
    if (n > first) std::memcpy(out + first, buf_.get(), n - first);
  }

  void Consume(size_t n) {
    head_ = (head_ + n) % capacity_;
    size_ -= n;
    if (size_ == 0) head_ = 0;
  }

 private:
  void Put(const uint8_t* p, size_t n) {
    size_t tail = (head_ + size_) % capacity_;
    size_t first = std::min(n, capacity_ - tail);
    std::memcpy(buf_.get() + tail, p, first);
    if (n > first) std::memcpy(buf_.get(), p + first, n - first);
    size_ += n;
  }

  std::unique_ptr<uint8_t[]> buf_;
  size_t capacity_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TCP_BYTE_RING_H_
