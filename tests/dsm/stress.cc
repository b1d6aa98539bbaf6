#include "stress.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/testing/cluster_files.h"
#include "stress_util.h"

namespace ssihv::dsm_stress {
namespace {

// ---- the guest-memory layout of the workload -------------------------------

struct Workload {
  std::vector<uint64_t> counters;  // gpa of each counter page
  std::vector<uint64_t> slots;     // gpa of each writer's slot
};

Workload MakeWorkload(const cluster::ClusterConfig& config,
                      const StressOptions& o) {
  cluster::GuestLayout layout(config);
  auto base = [&](int node) { return layout.RangesOfNode(node)[0].gpa; };
  Workload w;
  const int n = o.nodes;
  for (int k = 0; k < n * o.counters_per_node; ++k) {
    w.counters.push_back(base(k % n) + (16 + k / n) * cluster::kPageSize);
  }
  for (int s = 0; s < n * o.threads; ++s) {  // 8 writers per page
    const int i = s / n;
    w.slots.push_back(base(s % n) + (64 + i / 8) * cluster::kPageSize +
                      (i % 8) * 64);
  }
  return w;
}

// x86 test-and-test-and-set: `xchg` with a memory operand is locked.
void SpinLock(volatile uint32_t* lock) {
  for (;;) {
    uint32_t v = 1;
    asm volatile("xchg %0, %1" : "+r"(v), "+m"(*lock) : : "memory");
    if (v == 0) return;
    while (*lock != 0) asm volatile("pause");
  }
}

void SpinUnlock(volatile uint32_t* lock) {
  asm volatile("" : : : "memory");  // x86 stores are release stores
  *lock = 0;
}

constexpr uint64_t kSeqMask = (uint64_t{1} << 48) - 1;

// ---- one node process
// --------------------------------------------------------

struct ThreadResult {
  uint64_t increments = 0;  // also the last sequence written to its slot
  uint64_t reads = 0;
  uint64_t bad_reads = 0;
};

void RunThread(pager::DsmNode& node, const Workload& w, const StressOptions& o,
               int self, int t, ThreadResult* out) {
  const int me = self * o.threads + t;
  std::mt19937_64 rng(static_cast<uint64_t>(me) * 7919 + 1);
  std::vector<uint64_t> last(w.slots.size(), 0);
  auto at = [&](uint64_t gpa) {
    return reinterpret_cast<volatile uint64_t*>(node.HostAddress(gpa));
  };
  volatile uint64_t* my_slot = at(w.slots[me]);
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::duration<double>(o.seconds);
  for (uint64_t i = 1; o.iterations == 0 || i <= uint64_t(o.iterations); ++i) {
    if ((i & 63) == 0 && std::chrono::steady_clock::now() >= end) break;
    const uint64_t c = w.counters[rng() % w.counters.size()];
    auto* lock = reinterpret_cast<volatile uint32_t*>(node.HostAddress(c));
    SpinLock(lock);
    *at(c + 64) = *at(c + 64) + 1;
    SpinUnlock(lock);
    out->increments = i;

    *my_slot = (static_cast<uint64_t>(me) << 48) | i;

    const size_t s = rng() % w.slots.size();
    const uint64_t v = *at(w.slots[s]);
    if (v == 0) continue;
    ++out->reads;
    const uint64_t seq = v & kSeqMask;
    if ((v >> 48) != s || seq < last[s]) ++out->bad_reads;
    last[s] = seq;
  }
}

int NodeMain(const std::string& config_path, const StressOptions& o, int self,
             int cmd_fd, int report_fd) {
  auto fail = [&](const absl::Status& st) {
    WriteLine(report_fd, "error " + st.ToString());
    return 1;
  };
  auto config = cluster::LoadClusterConfig(config_path);
  if (!config.ok()) return fail(config.status());
  auto transport =
      rdmax::CreateTransport(*config, self, pager::DsmTransportOptions());
  if (!transport.ok()) return fail(transport.status());
  pager::DsmOptions dopt;
  dopt.fault_threads = o.fault_threads;
  dopt.background_downgrade = absl::Microseconds(o.background_downgrade_us);
  dopt.on_error = [report_fd](const absl::Status& st) {
    WriteLine(report_fd, "error " + st.ToString());
  };
  auto node =
      pager::DsmNode::Create(*config, self, *std::move(transport), dopt);
  if (!node.ok()) return fail(node.status());
  if (absl::Status st = (*node)->Start(); !st.ok()) return fail(st);
  const Workload w = MakeWorkload(*config, o);

  LineReader cmds(cmd_fd);
  const absl::Time deadline = absl::Now() + absl::Seconds(o.timeout_s);
  WriteLine(report_fd, "ready");
  if (auto go = cmds.Next(deadline); !go.ok() || *go != "go") return 2;

  std::vector<ThreadResult> results(o.threads);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back(RunThread, std::ref(**node), std::cref(w),
                         std::cref(o), self, t, &results[t]);
  }
  for (auto& t : threads) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  ThreadResult total;
  std::string seqs;
  for (const ThreadResult& r : results) {
    total.increments += r.increments;
    total.reads += r.reads;
    total.bad_reads += r.bad_reads;
    absl::StrAppend(&seqs, " ", r.increments);
  }
  WriteLine(report_fd, absl::StrCat("done ", secs, " ", total.increments, " ",
                                    total.reads, " ", total.bad_reads, seqs));

  // "check" lists the last sequence of every writer.
  auto check = cmds.Next(deadline);
  if (!check.ok() || check->rfind("check", 0) != 0) return 2;
  std::vector<uint64_t> final_seq;
  {
    std::istringstream in(check->substr(5));
    for (uint64_t v; in >> v;) final_seq.push_back(v);
  }
  if (final_seq.size() != w.slots.size()) return 2;
  uint64_t sum = 0;
  for (uint64_t c : w.counters) {
    sum += *reinterpret_cast<volatile uint64_t*>((*node)->HostAddress(c + 64));
  }
  uint64_t bad_slots = 0;
  for (size_t s = 0; s < w.slots.size(); ++s) {
    const uint64_t v =
        *reinterpret_cast<volatile uint64_t*>((*node)->HostAddress(w.slots[s]));
    bad_slots += v != ((static_cast<uint64_t>(s) << 48) | final_seq[s]);
  }
  // The counters one by one after the totals: on a violation the parent
  // shows which counter's copy differs between nodes.
  std::string values;
  for (uint64_t c : w.counters) {
    absl::StrAppend(
        &values, " ",
        *reinterpret_cast<volatile uint64_t*>((*node)->HostAddress(c + 64)));
  }
  WriteLine(report_fd, absl::StrCat("check ", sum, " ", bad_slots, values));
  WriteLine(report_fd, "stats " + (*node)->StatsJson().dump());
  if (auto ex = cmds.Next(deadline); !ex.ok() || *ex != "exit") return 2;
  (*node)->Stop();
  return 0;
}

// ---- the parent
// --------------------------------------------------------------

/// The next line of node `i` that is not an error report; errors fail.
absl::StatusOr<std::string> Expect(Child& c, int i, const std::string& word,
                                   absl::Time deadline) {
  SSIHV_ASSIGN_OR_RETURN(std::string line, c.reader->Next(deadline));
  if (line.rfind(word, 0) != 0) {
    return absl::InternalError(
        absl::StrCat("node ", i, ": expected '", word, "', got '", line, "'"));
  }
  return line;
}

absl::Status Drive(std::vector<Child>& children, const StressOptions& o,
                   StressResult* result, absl::Time deadline) {
  for (int i = 0; i < o.nodes; ++i) {
    SSIHV_RETURN_IF_ERROR(Expect(children[i], i, "ready", deadline).status());
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (Child& c : children) WriteLine(c.cmd, "go");
  std::string check = "check";
  for (int i = 0; i < o.nodes; ++i) {
    SSIHV_ASSIGN_OR_RETURN(std::string done,
                           Expect(children[i], i, "done", deadline));
    std::istringstream in(done.substr(5));
    NodeReport& r = result->nodes[i];
    in >> r.run_seconds >> r.increments >> r.reads >> r.bad_reads;
    for (int t = 0; t < o.threads; ++t) {
      uint64_t seq = 0;
      in >> seq;
      absl::StrAppend(&check, " ", seq);
    }
    result->expected_sum += r.increments;
  }
  result->wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  for (Child& c : children) WriteLine(c.cmd, check);
  for (int i = 0; i < o.nodes; ++i) {
    SSIHV_ASSIGN_OR_RETURN(std::string check,
                           Expect(children[i], i, "check", deadline));
    std::istringstream in(check.substr(6));
    in >> result->nodes[i].counter_sum >> result->nodes[i].bad_slots;
    std::getline(in, result->nodes[i].counter_values);
    SSIHV_ASSIGN_OR_RETURN(std::string stats,
                           Expect(children[i], i, "stats", deadline));
    result->nodes[i].stats_json = stats.substr(6);
  }
  for (Child& c : children) WriteLine(c.cmd, "exit");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StressResult> RunStress(const StressOptions& o) {
  if (o.history) return RunHistoryStress(o);
  if (o.nodes < 2 || o.nodes > 8 || o.threads < 1 || o.iterations < 0 ||
      !(o.seconds > 0) || (o.transport != "tcp" && o.transport != "rdma")) {
    return absl::InvalidArgumentError(
        "StressOptions: nodes in [2, 8], threads >= 1, iterations >= 0, "
        "seconds > 0, transport tcp or rdma");
  }
  char tmpl[] = "/tmp/ssihv-dsm-stress-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return base::LastErrnoStatus("mkdtemp");
  const std::string dir = tmpl;
  SSIHV_ASSIGN_OR_RETURN(std::string config, testing::WriteClusterConfig(
                                                 dir, o.nodes, 2, o.transport));

  StressResult result;
  result.nodes.resize(o.nodes);
  std::vector<Child> children;
  absl::Status st;
  for (int i = 0; i < o.nodes && st.ok(); ++i) {
    auto c = SpawnNode([&config, &o, i](int cmd, int report) {
      return NodeMain(config, o, i, cmd, report);
    });
    if (c.ok()) {
      children.push_back(*std::move(c));
    } else {
      st = c.status();
    }
  }
  if (st.ok()) {
    st = Drive(children, o, &result, absl::Now() + absl::Seconds(o.timeout_s));
  }
  absl::Status reaped = ReapNodes(children, /*kill=*/!st.ok());
  if (st.ok()) st = reaped;
  ::unlink((dir + "/cluster.json").c_str());
  ::unlink((dir + "/secret").c_str());
  ::rmdir(dir.c_str());
  SSIHV_RETURN_IF_ERROR(st);

  for (int i = 0; i < o.nodes; ++i) {
    const NodeReport& r = result.nodes[i];
    if (r.counter_sum != result.expected_sum) {
      result.violations.push_back(absl::StrCat(
          "node ", i, " sees counter sum ", r.counter_sum, ", expected ",
          result.expected_sum, "; its counters:", r.counter_values));
    }
    if (r.bad_slots != 0) {
      result.violations.push_back(
          absl::StrCat("node ", i, " sees ", r.bad_slots,
                       " slot(s) without their last write"));
    }
    if (r.bad_reads != 0) {
      result.violations.push_back(absl::StrCat(
          "node ", i, " read ", r.bad_reads,
          " slot value(s) with a wrong writer id or a sequence going back"));
    }
  }
  return result;
}

}  // namespace ssihv::dsm_stress
