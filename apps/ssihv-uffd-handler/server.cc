#include "server.h"

#include <string.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::uffd_handler {
namespace {

using base::Log;
using base::LogLevel;

// epoll tags: the kind in the top byte, a connection id below.
enum Kind : uint64_t { kListen = 1, kSignal, kHandshake, kVmExit, kVmConn };
constexpr int kKindShift = 56;
uint64_t Tag(Kind kind, uint64_t id) {
  return (uint64_t{kind} << kKindShift) | id;
}
Kind KindOf(uint64_t tag) { return static_cast<Kind>(tag >> kKindShift); }
uint64_t IdOf(uint64_t tag) { return tag & ((uint64_t{1} << kKindShift) - 1); }

double SecondsSince(int64_t start_ns) {
  return static_cast<double>(sys::NowNs() - start_ns) / 1e9;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Create(
    const HandlerOptions& options, std::unique_ptr<MemoryBacking> backing,
    base::UniqueFd signal_fd) {
  std::unique_ptr<Server> s(new Server(options, std::move(backing)));
  s->signal_fd_ = std::move(signal_fd);
  SSIHV_ASSIGN_OR_RETURN(s->epoll_, sys::EpollCreate());
  SSIHV_ASSIGN_OR_RETURN(s->listen_, sys::ListenUnix(options.socket));
  s->socket_exists_ = true;
  SSIHV_RETURN_IF_ERROR(sys::EpollAdd(s->epoll_.get(), s->listen_.get(),
                                      EPOLLIN, Tag(kListen, 0)));
  SSIHV_RETURN_IF_ERROR(sys::EpollAdd(s->epoll_.get(), s->signal_fd_.get(),
                                      EPOLLIN, Tag(kSignal, 0)));
  return s;
}

Server::~Server() {
  vms_.clear();  // stop every pager before the backing goes
  if (socket_exists_) (void)sys::Unlink(options_.socket);
}

int Server::Run() {
  Log(LogLevel::kInfo, "ssihv-uffd-handler: listening on ", options_.socket,
      ", serving ", backing_->Describe(), options_.once ? " (--once)" : "");
  epoll_event events[16];
  while (!finished_) {
    const int n = sys::EpollWait(epoll_.get(), events, 16, NextTimeoutMs());
    if (n < 0) {
      Log(LogLevel::kError, "ssihv-uffd-handler: epoll_wait: ", strerror(-n));
      return kExitError;
    }
    for (int i = 0; i < n && !finished_; ++i) {
      const uint64_t id = IdOf(events[i].data.u64);
      switch (KindOf(events[i].data.u64)) {
        case kListen:
          AcceptAll();
          break;
        case kSignal: {
          const int sig = sys::ReadSignal(signal_fd_.get());
          Log(LogLevel::kInfo, "ssihv-uffd-handler: ", strsignal(sig),
              ": stopping");
          if (!vms_.empty()) {
            Log(LogLevel::kWarning, "ssihv-uffd-handler: ", vms_.size(),
                " VM(s) still served: their next page fault will block "
                "forever");
          }
          finished_ = true;
          exit_status_ = kExitOk;
          break;
        }
        case kHandshake:
          ReadHandshake(id);
          break;
        case kVmExit:
          EndVm(id, "its process exited");
          break;
        case kVmConn:
          ReadVmConnection(id);
          break;
      }
    }
    ExpireHandshakes();
  }
  return exit_status_;
}

void Server::AcceptAll() {
  while (listen_) {
    absl::StatusOr<base::UniqueFd> conn = sys::Accept(listen_.get());
    if (!conn.ok()) {
      Log(LogLevel::kError, "ssihv-uffd-handler: ", conn.status().message());
      return;
    }
    if (!conn->valid()) return;
    Pending p;
    p.id = next_id_++;
    p.deadline_ns =
        sys::NowNs() + int64_t{options_.handshake_timeout_s} * 1000000000;
    absl::StatusOr<sys::Peer> peer = sys::PeerCredentials(conn->get());
    if (peer.ok()) p.peer = *peer;
    absl::Status st = sys::EpollAdd(epoll_.get(), conn->get(), EPOLLIN,
                                    Tag(kHandshake, p.id));
    p.conn = *std::move(conn);
    const uint64_t id = p.id;
    pending_.emplace(id, std::move(p));
    if (!st.ok()) {
      Refuse(id, st);
      continue;
    }
    if (options_.once) StopListening();  // one VM only
  }
}

void Server::StopListening() {
  if (!listen_) return;
  sys::EpollDel(epoll_.get(), listen_.get());
  listen_.Reset();
  if (socket_exists_) (void)sys::Unlink(options_.socket);
  socket_exists_ = false;
}

void Server::ReadHandshake(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  char buf[4096];
  for (;;) {
    absl::StatusOr<sys::Received> r =
        sys::Receive(p.conn.get(), buf, sizeof(buf));
    if (!r.ok()) return Refuse(id, r.status());
    if (r->would_block) return;
    for (base::UniqueFd& fd : r->fds) p.fds.push_back(std::move(fd));
    if (r->truncated_fds) {
      return Refuse(id, absl::InvalidArgumentError(
                            "handshake: more file descriptors than the 4 "
                            "expected at most (MSG_CTRUNC)"));
    }
    if (r->bytes == 0) {
      return Refuse(
          id, absl::InvalidArgumentError(absl::StrCat(
                  "handshake: the connection closed after ", p.data.size(),
                  " bytes, before a complete JSON "
                  "array of regions")));
    }
    p.data.append(buf, r->bytes);
    if (const size_t len = CompleteJsonLength(p.data); len != 0) {
      p.data.resize(len);  // nothing else is expected after it
      absl::Status st = StartVm(p);
      if (!st.ok()) return Refuse(id, st);
      pending_.erase(it);
      return;
    }
    if (p.data.size() > kMaxHandshakeBytes) {
      return Refuse(id, absl::InvalidArgumentError(absl::StrCat(
                            "handshake: more than ", kMaxHandshakeBytes,
                            " bytes without a complete JSON value")));
    }
  }
}

absl::Status Server::StartVm(Pending& p) {
  if (p.fds.empty()) {
    return absl::InvalidArgumentError(
        "handshake: no file descriptor came with it (the userfaultfd must "
        "be sent as SCM_RIGHTS with the JSON)");
  }
  if (p.fds.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "handshake: ", p.fds.size(),
        " file descriptors, expected 1 (the userfaultfd); Firecracker's "
        "guest_memfd protocol (3 fds) is not supported"));
  }
  SSIHV_ASSIGN_OR_RETURN(std::vector<GuestRegionMapping> regions,
                         ParseMappings(p.data, backing_->size()));
  Vm vm;
  vm.id = p.id;
  vm.peer = p.peer;
  vm.start_ns = sys::NowNs();
  vm.stopper = std::make_shared<Stopper>();
  vm.stopper->who = Who(p.id, p.peer);
  vm.stopper->pid = p.peer.pid;
  SSIHV_ASSIGN_OR_RETURN(
      vm.session,
      Session::Start(p.fds[0].get(), regions, *backing_, options_.fault_threads,
                     [stopper = vm.stopper](const absl::Status& why) {
                       stopper->Stop(why);
                     }));
  absl::StatusOr<base::UniqueFd> pidfd =
      sys::PeerPidfd(p.conn.get(), p.peer.pid);
  if (!pidfd.ok() && absl::IsNotFound(pidfd.status())) {
    // The VM's process exited between its handshake and now.
    return absl::FailedPreconditionError(absl::StrCat(
        "its process already exited (", pidfd.status().message(), ")"));
  }
  if (!pidfd.ok()) {
    Log(LogLevel::kWarning, "ssihv-uffd-handler: ", Who(p.id, p.peer),
        ": cannot watch its process (", pidfd.status().message(),
        "); it counts as gone when its connection closes");
  } else {
    vm.pidfd = *std::move(pidfd);
    vm.stopper->pidfd.store(vm.pidfd.get());
    SSIHV_RETURN_IF_ERROR(sys::EpollAdd(epoll_.get(), vm.pidfd.get(), EPOLLIN,
                                        Tag(kVmExit, vm.id)));
  }
  sys::EpollDel(epoll_.get(), p.conn.get());
  vm.conn = std::move(p.conn);
  SSIHV_RETURN_IF_ERROR(sys::EpollAdd(
      epoll_.get(), vm.conn.get(), EPOLLIN | EPOLLRDHUP, Tag(kVmConn, vm.id)));
  uint64_t bytes = 0;
  for (const GuestRegionMapping& r : regions) bytes += r.size;
  Log(LogLevel::kInfo, "ssihv-uffd-handler: ", Who(vm.id, vm.peer),
      ": serving ", regions.size(), " region(s), ", bytes, " bytes");
  vms_.emplace(vm.id, std::move(vm));
  return absl::OkStatus();
}

void Server::Refuse(uint64_t id, const absl::Status& why) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Log(LogLevel::kError, "ssihv-uffd-handler: ", Who(id, it->second.peer),
      ": refused, connection closed: ", why.message());
  sys::EpollDel(epoll_.get(), it->second.conn.get());
  pending_.erase(it);  // closes the connection and any received fd
  if (options_.once) {
    finished_ = true;
    exit_status_ = kExitError;
  }
}

void Server::ReadVmConnection(uint64_t id) {
  auto it = vms_.find(id);
  if (it == vms_.end()) return;
  Vm& vm = it->second;
  char buf[4096];
  for (;;) {
    absl::StatusOr<sys::Received> r =
        sys::Receive(vm.conn.get(), buf, sizeof(buf));
    if (r.ok() && r->would_block) return;
    if (r.ok() && r->bytes > 0) {
      // Firecracker sends nothing after the handshake unless it uses
      // guest_memfd, which was refused; fds that came along are closed.
      if (vm.ignored_bytes == 0) {
        Log(LogLevel::kWarning, "ssihv-uffd-handler: ", Who(id, vm.peer),
            ": ignoring data sent after the handshake");
      }
      vm.ignored_bytes += r->bytes;
      continue;
    }
    break;  // closed, or an error: the same for us
  }
  sys::EpollDel(epoll_.get(), vm.conn.get());
  vm.conn.Reset();
  if (!vm.pidfd) EndVm(id, "its connection closed");
}

void Server::EndVm(uint64_t id, absl::string_view why) {
  auto it = vms_.find(id);
  if (it == vms_.end()) return;
  Vm& vm = it->second;
  if (vm.pidfd) sys::EpollDel(epoll_.get(), vm.pidfd.get());
  if (vm.conn) sys::EpollDel(epoll_.get(), vm.conn.get());
  const std::string summary = vm.session->Summary();
  Log(LogLevel::kInfo, "ssihv-uffd-handler: ", Who(id, vm.peer), ": gone (",
      why, ") after ", absl::StrFormat("%.1f", SecondsSince(vm.start_ns)),
      " s: ", summary);
  const bool stopped = vm.stopper->fired.load();
  vms_.erase(it);  // stops its pager, closes its uffd
  if (options_.once) {
    finished_ = true;
    exit_status_ = stopped ? kExitError : kExitOk;
  }
}

void Server::Stopper::Stop(const absl::Status& why) {
  // Only a page its source cannot provide (Unavailable) stops the VM; a
  // mapping that failed because the VM's process is exiting (ESRCH) or
  // another error of the ioctl is reported only.
  if (!absl::IsUnavailable(why) || fired.exchange(true)) {
    Log(LogLevel::kError, "ssihv-uffd-handler: ", who, ": ", why.message());
    return;
  }
  Log(LogLevel::kError, "ssihv-uffd-handler: ", who,
      ": a page of its memory cannot be served (", why.message(),
      "); stopping the VM (SIGKILL)");
  absl::Status st = sys::KillProcess(pidfd.load(), pid);
  if (!st.ok()) {
    Log(LogLevel::kError, "ssihv-uffd-handler: ", who,
        ": cannot stop it: ", st.message(), "; its vCPU waits on the page");
  }
}

void Server::ExpireHandshakes() {
  const int64_t now = sys::NowNs();
  std::vector<uint64_t> late;
  for (const auto& [id, p] : pending_) {
    if (now >= p.deadline_ns) late.push_back(id);
  }
  for (uint64_t id : late) {
    Refuse(id, absl::DeadlineExceededError(
                   absl::StrCat("handshake: not complete within ",
                                options_.handshake_timeout_s, " s")));
  }
}

int Server::NextTimeoutMs() const {
  if (pending_.empty()) return -1;
  int64_t next = INT64_MAX;
  for (const auto& [id, p] : pending_) next = std::min(next, p.deadline_ns);
  const int64_t ms = (next - sys::NowNs()) / 1000000 + 1;
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 60000));
}

std::string Server::Who(uint64_t id, const sys::Peer& peer) const {
  return absl::StrCat("vm #", id, " (pid ", peer.pid, ", uid ", peer.uid, ")");
}

}  // namespace ssihv::uffd_handler
