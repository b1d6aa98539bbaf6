#include "fc_sys.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::fc_client::sys {

using base::LastErrnoStatus;
using base::UniqueFd;

absl::StatusOr<UniqueFd> OpenUffd() {
  constexpr int kFlags = O_CLOEXEC | O_NONBLOCK;
  UniqueFd uffd;
  UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (dev) uffd.Reset(::ioctl(dev.get(), USERFAULTFD_IOC_NEW, kFlags));
  if (!uffd) uffd.Reset(static_cast<int>(::syscall(SYS_userfaultfd, kFlags)));
  if (!uffd) return LastErrnoStatus("userfaultfd");
  return uffd;
}

absl::Status UffdApi(int uffd, uint64_t features) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(uffd, UFFDIO_API, &api) < 0) {
    return LastErrnoStatus(
        absl::StrCat("UFFDIO_API(features 0x", absl::Hex(features), ")"));
  }
  return absl::OkStatus();
}

absl::Status UffdRegisterMissing(int uffd, uint64_t start, uint64_t len) {
  uffdio_register reg{};
  reg.range.start = start;
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (::ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
    return LastErrnoStatus(absl::StrCat("UFFDIO_REGISTER(MISSING) of 0x",
                                        absl::Hex(start), " + ", len));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
  UniqueFd conn(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!conn) return LastErrnoStatus("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(conn.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) <
      0) {
    return LastErrnoStatus(absl::StrCat("connect ", path));
  }
  return conn;
}

absl::Status SendWithFds(int conn, const std::string& body,
                         const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(body.data()), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t n = ::sendmsg(conn, &msg, MSG_NOSIGNAL);
  if (n < 0) {
    return LastErrnoStatus(absl::StrCat("sendmsg of ", body.size(),
                                        " bytes and ", fds.size(), " fd(s)"));
  }
  if (static_cast<size_t>(n) != body.size()) {
    return absl::InternalError(
        absl::StrCat("sendmsg sent ", n, " of ", body.size(), " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace ssihv::fc_client::sys
