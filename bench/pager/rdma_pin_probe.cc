// rdma_pin_probe: measures why the DSM node does not register guest RAM as
// an RDMA memory region (docs/PAGER.md, "Remote reads"). Needs a verbs
// device (the lab VM's rxe0):
//
//   tests/lab/run.sh -- build-pager/bench/pager/rdma_pin_probe [--pages N]
//
// Node 0 maps N pages of anonymous guest RAM, registers them with a pager
// (zero-fill source, MISSING+WP) and then with the RDMA transport
// (ibv_reg_mr pins). It reports what registering untouched uffd-armed RAM
// does (on Linux 6.1: EFAULT, long-term GUP cannot wait for a userfault)
// and what registering it costs once populated. Then it writes pattern A
// into a page, drops
// the page with MADV_DONTNEED (what a DSM invalidation does), writes
// pattern B, and node 1 reads the page with a one-sided RDMA READ: if it
// sees A, the MR and the process mapping have diverged.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ssihv/base/file_util.h"
#include "ssihv/cluster/config.h"
#include "ssihv/pager/pager.h"
#include "ssihv/rdmax/transport.h"

namespace {

using ssihv::pager::FaultKind;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPatternA = 0xAAAAAAAAAAAAAAAAull;
constexpr uint64_t kPatternB = 0xBBBBBBBBBBBBBBBBull;

int Fail(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "rdma_pin_probe: %s: %s\n", what, st.ToString().c_str());
  return 1;
}

bool ReadByte(int fd, char* c) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 120000) == 1 && read(fd, c, 1) == 1;
}
void WriteByte(int fd, char c) { [[maybe_unused]] auto n = write(fd, &c, 1); }

int Owner(const ssihv::cluster::ClusterConfig& config, uint64_t pages,
          int to_reader, int from_reader) {
  namespace pg = ssihv::pager;
  auto mem = pg::GuestMemory::Create(pages * kPage);
  if (!mem.ok()) return Fail("guest memory", mem.status());
  auto pager = pg::Pager::Create({});
  if (!pager.ok()) return Fail("pager", pager.status());
  absl::Status st = (*pager)->RegisterGuestMemory(*mem, 0, mem->size(), 0);
  if (st.ok()) st = (*pager)->SetSource(std::make_shared<pg::ZeroSource>());
  if (st.ok()) st = (*pager)->Start();
  if (!st.ok()) return Fail("pager start", st);
  auto transport = ssihv::rdmax::CreateTransport(config, 0);
  if (!transport.ok()) return Fail("transport", transport.status());
  if (st = (*transport)->Start(); !st.ok()) return Fail("transport start", st);

  // 1. The MR over RAM the pager has not populated yet.
  auto t0 = std::chrono::steady_clock::now();
  st = (*transport)->RegisterRegion(1, mem->data(), mem->size());
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
  std::printf(
      "ibv_reg_mr over %llu untouched pages of uffd-armed anonymous RAM: "
      "%s after %.1f ms, %llu uffd faults served during the call\n",
      static_cast<unsigned long long>(pages),
      st.ok() ? "registered" : std::string(st.message()).c_str(), ms,
      static_cast<unsigned long long>((*pager)->Stats().total_faults()));
  if (st.ok()) (void)(*transport)->UnregisterRegion(1);

  // 2. Populated first (every page faulted in through the pager).
  for (uint64_t p = 0; p < pages; ++p) {
    *reinterpret_cast<volatile uint64_t*>(mem->data() + p * kPage) = p;
  }
  t0 = std::chrono::steady_clock::now();
  st = (*transport)->RegisterRegion(1, mem->data(), mem->size());
  ms = std::chrono::duration<double, std::milli>(
           std::chrono::steady_clock::now() - t0)
           .count();
  if (!st.ok()) return Fail("RegisterRegion (ibv_reg_mr) of populated RAM", st);
  std::printf(
      "ibv_reg_mr over the same pages once populated: %.1f ms (%.2f "
      "us per page)\n",
      ms, ms * 1000 / static_cast<double>(pages));

  uint8_t* page = mem->data() + 7 * kPage;
  *reinterpret_cast<volatile uint64_t*>(page) = kPatternA;
  st = (*pager)->resolver().Discard(7 * kPage, kPage);  // a DSM zap
  if (!st.ok()) return Fail("discard", st);
  *reinterpret_cast<volatile uint64_t*>(page) = kPatternB;  // faults again
  if (st = (*transport)->WaitForAllPeers(absl::Now() + absl::Seconds(60));
      !st.ok()) {
    return Fail("wait for the reader", st);
  }
  WriteByte(to_reader, 'r');
  char c;
  ReadByte(from_reader, &c);
  (*transport)->Shutdown();
  return 0;
}

int Reader(const ssihv::cluster::ClusterConfig& config, int from_owner,
           int to_owner) {
  auto transport = ssihv::rdmax::CreateTransport(config, 1);
  if (!transport.ok()) return Fail("transport", transport.status());
  if (absl::Status st = (*transport)->Start(); !st.ok()) {
    return Fail("transport start", st);
  }
  char c;
  if (!ReadByte(from_owner, &c)) return Fail("owner", absl::UnknownError("?"));
  std::vector<uint8_t> buf(kPage);
  absl::Status st = (*transport)->Fetch(0, 1, 7 * kPage, absl::MakeSpan(buf));
  uint64_t v = 0;
  std::memcpy(&v, buf.data(), 8);
  if (!st.ok()) return Fail("Fetch (RDMA READ)", st);
  std::printf(
      "the process wrote B after the discard; an RDMA READ of the MR "
      "returns %s (0x%016llx)\n",
      v == kPatternB   ? "B: consistent"
      : v == kPatternA ? "A: STALE, the MR kept the old page"
                       : "something else",
      static_cast<unsigned long long>(v));
  WriteByte(to_owner, 'd');
  (*transport)->Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t pages = 16384;
  if (argc == 3 && std::strcmp(argv[1], "--pages") == 0) {
    pages = std::strtoull(argv[2], nullptr, 10);
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: rdma_pin_probe [--pages N]\n");
    return 2;
  }
  if (absl::Status st = ssihv::rdmax::ProbeRdmaDevice("", 1); !st.ok()) {
    std::printf("SKIP rdma: %s\n", st.ToString().c_str());
    return 77;
  }
  char dir[] = "/tmp/ssihv-pin-probe-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  const std::string secret = std::string(dir) + "/secret";
  (void)ssihv::base::WriteFileAtomically(secret, "pin-probe-secret-0123456789");
  chmod(secret.c_str(), 0600);
  auto config = ssihv::cluster::ParseClusterConfig(absl::StrCat(
      R"({"transport": "rdma", "secret_file": ")", secret,
      R"(", "nodes": [{"id": 0, "vcpus": 1, "memory_mib": 2, "address": )",
      R"("127.0.0.1:7961"}, {"id": 1, "vcpus": 1, "memory_mib": 2, )",
      R"("address": "127.0.0.1:7962"}]})"));
  if (!config.ok()) return Fail("config", config.status());
  int a[2], b[2];
  if (pipe(a) != 0 || pipe(b) != 0) return 1;
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    _exit(Reader(*config, a[0], b[1]));
  }
  const int rc = Owner(*config, pages, a[1], b[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  unlink(secret.c_str());
  rmdir(dir);
  return rc != 0 ? rc : (WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}
