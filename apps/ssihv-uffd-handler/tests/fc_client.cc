#include "fc_client.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::fc_client {

using base::LastErrnoStatus;
using base::UniqueFd;

absl::StatusOr<UniqueFd> CreateUffd() {
  constexpr int kFlags = O_CLOEXEC | O_NONBLOCK;
  UniqueFd uffd;
  UniqueFd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (dev) uffd.Reset(::ioctl(dev.get(), USERFAULTFD_IOC_NEW, kFlags));
  if (!uffd) uffd.Reset(static_cast<int>(::syscall(SYS_userfaultfd, kFlags)));
  if (!uffd) return LastErrnoStatus("userfaultfd");
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_EVENT_REMOVE;
  if (::ioctl(uffd.get(), UFFDIO_API, &api) < 0) {
    return LastErrnoStatus("UFFDIO_API(EVENT_REMOVE)");
  }
  return uffd;
}

absl::Status RegisterMissing(int uffd, uint8_t* host, uint64_t size) {
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uint64_t>(host);
  reg.range.len = size;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (::ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
    return LastErrnoStatus("UFFDIO_REGISTER(MISSING)");
  }
  return absl::OkStatus();
}

std::string MappingsJson(const std::vector<RegionSpec>& regions,
                         const std::vector<uint64_t>& hosts,
                         PageSizeField field, uint64_t page_size) {
  nlohmann::json array = nlohmann::json::array();
  for (size_t i = 0; i < regions.size(); ++i) {
    nlohmann::json r = {{"base_host_virt_addr", hosts[i]},
                        {"size", regions[i].size},
                        {"offset", regions[i].offset}};
    if (field != PageSizeField::kPageSizeKib) r["page_size"] = page_size;
    if (field != PageSizeField::kPageSize) r["page_size_kib"] = page_size;
    array.push_back(r);
  }
  return array.dump();
}

absl::StatusOr<UniqueFd> SendHandshake(const std::string& socket,
                                       const std::string& body,
                                       const std::vector<int>& fds) {
  UniqueFd conn(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!conn) return LastErrnoStatus("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(conn.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) <
      0) {
    return LastErrnoStatus(absl::StrCat("connect ", socket));
  }
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
  const ssize_t n = ::sendmsg(conn.get(), &msg, MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(body.size())) {
    return LastErrnoStatus("sendmsg of the handshake");
  }
  return conn;
}

absl::StatusOr<std::unique_ptr<Vm>> Vm::Restore(const std::string& socket,
                                                const VmOptions& options) {
  std::unique_ptr<Vm> vm(new Vm());
  std::vector<uint64_t> hosts;
  for (const RegionSpec& spec : options.regions) {
    void* p = ::mmap(nullptr, spec.size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return LastErrnoStatus("mmap guest region");
    vm->regions_.push_back({spec, static_cast<uint8_t*>(p)});
    hosts.push_back(reinterpret_cast<uint64_t>(p));
  }
  SSIHV_ASSIGN_OR_RETURN(vm->uffd_, CreateUffd());
  for (const Region& r : vm->regions_) {
    SSIHV_RETURN_IF_ERROR(
        RegisterMissing(vm->uffd_.get(), r.host, r.spec.size));
  }
  SSIHV_ASSIGN_OR_RETURN(
      vm->conn_,
      SendHandshake(
          socket, MappingsJson(options.regions, hosts, options.page_size_field),
          {vm->uffd_.get()}));
  if (!options.keep_connection) vm->conn_.Reset();
  return vm;
}

Vm::~Vm() {
  for (const Region& r : regions_) ::munmap(r.host, r.spec.size);
}

}  // namespace ssihv::fc_client
