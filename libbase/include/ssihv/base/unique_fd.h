// A move-only owner of a file descriptor, closed on destruction.
#ifndef SSIHV_BASE_UNIQUE_FD_H_
#define SSIHV_BASE_UNIQUE_FD_H_

#include <utility>

namespace ssihv::base {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  /// Gives up ownership without closing.
  int Release() { return std::exchange(fd_, -1); }
  /// Closes the owned fd (if any) and takes `fd`.
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace ssihv::base

#endif  // SSIHV_BASE_UNIQUE_FD_H_
