// The handler's event loop: one thread, one epoll set over the listening
// socket, the stop signals, the connections still handshaking, and, per VM,
// a pidfd of its process and its connection. Faults never pass through
// here: each VM's pager has its own fault threads.
//
// A VM is gone when its process exits (the pidfd; the process's memory and
// registrations go with it). Firecracker up to v1.11 closes the connection
// right after the handshake and later versions keep it open until they
// exit, so the connection closing ends a VM only when its process cannot be
// watched (a PID namespace that hides it).
#ifndef SSIHV_APPS_UFFD_HANDLER_SERVER_H_
#define SSIHV_APPS_UFFD_HANDLER_SERVER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backing.h"
#include "options.h"
#include "session.h"
#include "ssihv/base/unique_fd.h"
#include "sys.h"

namespace ssihv::uffd_handler {

class Server {
 public:
  /// Listens on options.socket (which must not exist). `signal_fd` is a
  /// signalfd: any signal on it stops the server.
  static absl::StatusOr<std::unique_ptr<Server>> Create(
      const HandlerOptions& options, std::unique_ptr<MemoryBacking> backing,
      base::UniqueFd signal_fd);
  /// Removes the socket file if it is still there.
  ~Server();

  /// Serves until a stop signal (kExitOk) or, with --once, until the one VM
  /// is gone (kExitOk) or its handshake was refused (kExitError).
  int Run();

 private:
  struct Pending {  // a connection that has not finished its handshake
    uint64_t id = 0;
    base::UniqueFd conn;
    sys::Peer peer;
    std::string data;
    std::vector<base::UniqueFd> fds;
    int64_t deadline_ns = 0;
  };
  // Stops a VM that has a fault its memory can no longer serve (the source
  // fails it with Unavailable: the exporter gone for good): its vCPU would
  // wait on the page forever, and zeros in its place would be silent
  // corruption. Called on a fault thread; the VM then ends through its
  // pidfd as any exit does.
  struct Stopper {
    std::string who;
    pid_t pid = 0;
    std::atomic<int> pidfd{-1};  // the Vm's, once it has one
    std::atomic<bool> fired{false};
    void Stop(const absl::Status& why);
  };
  struct Vm {
    uint64_t id = 0;
    sys::Peer peer;
    base::UniqueFd conn;   // invalid once the peer closed it
    base::UniqueFd pidfd;  // invalid when the process cannot be watched
    std::shared_ptr<Stopper> stopper;
    std::unique_ptr<Session> session;  // destroyed first: no Stop after it
    int64_t start_ns = 0;
    uint64_t ignored_bytes = 0;
  };

  Server(const HandlerOptions& options, std::unique_ptr<MemoryBacking> backing)
      : options_(options), backing_(std::move(backing)) {}

  void AcceptAll();
  void StopListening();
  void ReadHandshake(uint64_t id);
  absl::Status StartVm(Pending& p);
  void Refuse(uint64_t id, const absl::Status& why);
  void ReadVmConnection(uint64_t id);
  void EndVm(uint64_t id, absl::string_view why);
  void ExpireHandshakes();
  int NextTimeoutMs() const;
  std::string Who(uint64_t id, const sys::Peer& peer) const;

  const HandlerOptions options_;
  std::unique_ptr<MemoryBacking> backing_;
  base::UniqueFd epoll_;
  base::UniqueFd listen_;
  bool socket_exists_ = false;
  base::UniqueFd signal_fd_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::map<uint64_t, Vm> vms_;
  // --once: the one VM's outcome decides the exit status.
  bool finished_ = false;
  int exit_status_ = kExitOk;
};

}  // namespace ssihv::uffd_handler

#endif  // SSIHV_APPS_UFFD_HANDLER_SERVER_H_
