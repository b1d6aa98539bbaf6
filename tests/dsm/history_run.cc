// The stress's history mode: node processes read and write registers in
// guest RAM through their DsmNodes, every operation is logged with its
// CLOCK_MONOTONIC interval (one clock for every process of the machine),
// and the driver checks the whole history for linearizability (history.h)
// while adversities (adversity.h) run.
//
// The logs live in one MAP_SHARED mapping the driver creates before it
// forks the nodes, so the operations of a node that is SIGKILLed are not
// lost with it: a write it was doing when it died is a pending write.
//
// Reads are compressed without weakening the check: of a run of reads of
// one register by one thread that return the same value, only the first
// and the last are logged. Any read between them fits in the same value's
// block between those two in every linearization that places them.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "adversity.h"
#include "history.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/config.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/testing/cluster_files.h"
#include "stress.h"
#include "stress_util.h"

namespace ssihv::dsm_stress {
namespace {

/// How long a node waits for its threads after the run's end before it
/// counts the ones still blocked in a fault as stuck.
constexpr absl::Duration kGrace = absl::Seconds(3);
// How long past `seconds` a thread may go on to reach StressOptions::min_ops.
constexpr absl::Duration kMaxExtension = absl::Seconds(20);

int64_t Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// ---- the shared logs -------------------------------------------------------

struct LogRecord {
  int64_t start_ns;
  int64_t end_ns;  // 0 while in flight
  uint64_t value;
  uint32_t reg;
  uint32_t kind;  // RegisterOp::Kind
};
static_assert(sizeof(LogRecord) == 32);

struct alignas(64) LogHeader {
  std::atomic<uint64_t> count;  // complete records
  std::atomic<uint64_t> full;
  std::atomic<uint64_t> reads_seen;
};

class SharedLogs {
 public:
  static absl::StatusOr<SharedLogs> Create(int nodes, int threads,
                                           uint64_t capacity) {
    SharedLogs logs;
    logs.threads_ = threads;
    logs.capacity_ = capacity;
    logs.stride_ = sizeof(LogHeader) + capacity * sizeof(LogRecord);
    logs.bytes_ = logs.stride_ * nodes * threads;
    void* p = ::mmap(nullptr, logs.bytes_, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      return base::LastErrnoStatus(
          absl::StrCat("mmap ", logs.bytes_, " bytes of history logs"));
    }
    logs.base_ = static_cast<uint8_t*>(p);
    return logs;
  }
  SharedLogs(SharedLogs&& o) noexcept { *this = std::move(o); }
  SharedLogs& operator=(SharedLogs&& o) noexcept {
    std::swap(base_, o.base_);
    std::swap(bytes_, o.bytes_);
    threads_ = o.threads_;
    capacity_ = o.capacity_;
    stride_ = o.stride_;
    return *this;
  }
  ~SharedLogs() {
    if (base_ != nullptr) ::munmap(base_, bytes_);
  }

  LogHeader* Header(int node, int thread) const {
    return reinterpret_cast<LogHeader*>(base_ +
                                        (node * threads_ + thread) * stride_);
  }
  LogRecord* Records(int node, int thread) const {
    return reinterpret_cast<LogRecord*>(Header(node, thread) + 1);
  }
  uint64_t capacity() const { return capacity_; }

 private:
  SharedLogs() = default;
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
  int threads_ = 0;
  uint64_t capacity_ = 0;
  size_t stride_ = 0;
};

// ---- one node's threads ----------------------------------------------------

std::vector<uint64_t> RegisterGpas(const cluster::ClusterConfig& config,
                                   const StressOptions& o) {
  cluster::GuestLayout layout(config);
  std::vector<uint64_t> regs;
  for (int r = 0; r < o.nodes * o.registers_per_node; ++r) {
    const int node = r % o.nodes, j = r / o.nodes;
    regs.push_back(layout.RangesOfNode(node)[0].gpa +
                   (128 + j / 2) * cluster::kPageSize + (j % 2) * 64);
  }
  return regs;
}

class ThreadLog {
 public:
  ThreadLog(LogHeader* header, LogRecord* records, uint64_t capacity,
            size_t registers)
      : header_(header),
        records_(records),
        capacity_(capacity),
        tails_(registers) {}

  /// Fills the next record's fields but `end` before a write's access, so
  /// a node killed meanwhile leaves it as a pending write.
  bool BeginWrite(uint32_t reg, uint64_t value) {
    Flush(reg);
    if (!Room()) return false;
    LogRecord& r = records_[header_->count.load(std::memory_order_relaxed)];
    r.value = value;
    r.reg = reg;
    r.kind = RegisterOp::kWrite;
    r.end_ns = 0;
    asm volatile("" ::: "memory");
    r.start_ns = Now();
    return true;
  }
  void EndWrite() {
    LogRecord& r = records_[header_->count.load(std::memory_order_relaxed)];
    r.end_ns = Now();
    header_->count.fetch_add(1, std::memory_order_release);
  }
  bool Read(uint32_t reg, uint64_t value, int64_t start, int64_t end) {
    header_->reads_seen.fetch_add(1, std::memory_order_relaxed);
    Tail& t = tails_[reg];
    if (t.open && t.value == value) {
      t.last = {start, end};
      t.has_last = true;
      return true;
    }
    Flush(reg);
    if (!Append(reg, value, start, end)) return false;
    t = Tail{};
    t.value = value;
    t.open = true;
    return true;
  }
  void FlushAll() {
    for (uint32_t r = 0; r < tails_.size(); ++r) Flush(r);
  }

 private:
  struct Tail {
    uint64_t value = 0;
    bool open = false;
    bool has_last = false;
    std::pair<int64_t, int64_t> last;
  };
  bool Room() {
    if (header_->count.load(std::memory_order_relaxed) < capacity_) {
      return true;
    }
    header_->full.store(1, std::memory_order_relaxed);
    return false;
  }
  bool Append(uint32_t reg, uint64_t value, int64_t start, int64_t end) {
    if (!Room()) return false;
    records_[header_->count.load(std::memory_order_relaxed)] = {
        start, end, value, reg, RegisterOp::kRead};
    header_->count.fetch_add(1, std::memory_order_release);
    return true;
  }
  void Flush(uint32_t reg) {
    Tail& t = tails_[reg];
    if (t.open && t.has_last) {
      Append(reg, t.value, t.last.first, t.last.second);
    }
    t.open = false;
    t.has_last = false;
  }

  LogHeader* header_;
  LogRecord* records_;
  uint64_t capacity_;
  std::vector<Tail> tails_;
};

// The fences keep the access inside its interval: the load or store cannot
// be performed before `start` was read, and a store is globally visible
// (out of the store buffer) before `end` is read.
void HistoryThread(pager::DsmNode& node, const std::vector<uint64_t>& regs,
                   const StressOptions& o, int self, int t, ThreadLog log,
                   int64_t end_ns, int64_t hard_end_ns,
                   std::atomic<bool>* finished) {
  std::mt19937_64 rng(o.seed * 1000003 + static_cast<uint64_t>(self) * 131 +
                      static_cast<uint64_t>(t));
  uint64_t seq = 0;
  int64_t ops = 0;
  for (;; ++ops) {
    const int64_t now = Now();
    if (now >= end_ns && (ops >= o.min_ops || now >= hard_end_ns)) break;
    const uint32_t r = static_cast<uint32_t>(rng() % regs.size());
    auto* p = reinterpret_cast<volatile uint64_t*>(node.HostAddress(regs[r]));
    if (static_cast<int>(rng() % 100) < o.write_percent) {
      const uint64_t v = (static_cast<uint64_t>(self + 1) << 56) |
                         (static_cast<uint64_t>(t) << 44) | ++seq;
      if (!log.BeginWrite(r, v)) break;
      asm volatile("lfence" ::: "memory");
      *p = v;
      asm volatile("mfence" ::: "memory");
      log.EndWrite();
    } else {
      const int64_t start = Now();
      asm volatile("lfence" ::: "memory");
      const uint64_t v = *p;
      asm volatile("lfence" ::: "memory");
      if (!log.Read(r, v, start, Now())) break;
    }
  }
  log.FlushAll();
  finished->store(true, std::memory_order_release);
}

/// Runs the threads; meanwhile obeys "dead <k>" from the driver. Returns
/// the number of threads still blocked kGrace after the end.
int RunThreads(pager::DsmNode& node, const std::vector<uint64_t>& regs,
               const StressOptions& o, int self, const SharedLogs& logs,
               LineReader& cmds, int report_fd) {
  const int64_t end_ns =
      Now() + static_cast<int64_t>(o.seconds * 1'000'000'000);
  const int64_t hard_end_ns =
      end_ns +
      (o.min_ops > 0 ? absl::ToInt64Nanoseconds(kMaxExtension) : int64_t{0});
  std::vector<std::atomic<bool>> finished(o.threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    finished[t] = false;
    ThreadLog log(logs.Header(self, t), logs.Records(self, t), logs.capacity(),
                  regs.size());
    threads.emplace_back(HistoryThread, std::ref(node), std::cref(regs),
                         std::cref(o), self, t, std::move(log), end_ns,
                         hard_end_ns, &finished[t]);
  }
  const int64_t give_up = hard_end_ns + absl::ToInt64Nanoseconds(kGrace);
  int running = o.threads;
  while (running > 0 && Now() < give_up) {
    absl::StatusOr<std::string> cmd = cmds.Poll(absl::Milliseconds(20));
    if (cmd.ok() && cmd->rfind("dead ", 0) == 0) {
      const int dead = std::atoi(cmd->c_str() + 5);
      absl::Status st = node.DeclareDead(static_cast<uint32_t>(dead));
      WriteLine(report_fd, st.ok() ? absl::StrCat("declared ", dead)
                                   : "error DeclareDead: " + st.ToString());
    }
    running = 0;
    for (auto& f : finished) running += !f.load(std::memory_order_acquire);
  }
  for (int t = 0; t < o.threads; ++t) {
    if (finished[t]) {
      threads[t].join();
    } else {
      threads[t].detach();  // blocked in a fault; _exit ends it
    }
  }
  return running;
}

int HistoryNodeMain(const std::string& config_path, const StressOptions& o,
                    int self, const SharedLogs& logs, int cmd_fd,
                    int report_fd) {
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
    WriteLine(report_fd,
              (absl::IsDataLoss(st) ? "lost " : "error ") + st.ToString());
  };
  auto node =
      pager::DsmNode::Create(*config, self, *std::move(transport), dopt);
  if (!node.ok()) return fail(node.status());
  if (absl::Status st = (*node)->Start(); !st.ok()) return fail(st);
  const std::vector<uint64_t> regs = RegisterGpas(*config, o);

  LineReader cmds(cmd_fd);
  const absl::Time deadline = absl::Now() + absl::Seconds(o.timeout_s);
  WriteLine(report_fd, "ready");
  if (auto go = cmds.Next(deadline); !go.ok() || *go != "go") return 2;
  const int stuck = RunThreads(**node, regs, o, self, logs, cmds, report_fd);
  WriteLine(report_fd, absl::StrCat("done ", stuck));
  for (;;) {
    absl::StatusOr<std::string> cmd = cmds.Next(deadline);
    if (!cmd.ok()) return 2;
    if (*cmd == "stats") {
      WriteLine(report_fd, "stats " + (*node)->StatsJson().dump());
    } else if (*cmd == "exit") {
      break;
    }  // a late "dead k" needs nothing more
  }
  if (stuck > 0) _exit(0);  // threads blocked in faults: no orderly Stop
  (*node)->Stop();
  return 0;
}

// ---- the driver
// --------------------------------------------------------------

/// Reads node `i`'s lines until one starts with `word`, noting "lost" and
/// "error" lines on the way. Unavailable when the node died.
absl::StatusOr<std::string> NextReport(Child& c, int i, const std::string& word,
                                       absl::Time deadline,
                                       std::set<std::string>* lost,
                                       std::vector<std::string>* errors) {
  for (;;) {
    SSIHV_ASSIGN_OR_RETURN(std::string line, c.reader->Next(deadline));
    if (line.rfind(word, 0) == 0) return line;
    if (line.rfind("lost ", 0) == 0) {
      // "... guest page gpa=0x... is lost": one page, however often told.
      const size_t at = line.find("guest page gpa=");
      if (at != std::string::npos) {
        lost->insert(line.substr(at, line.find(' ', at + 11) - at));
      }
    } else if (line.rfind("error ", 0) == 0) {
      errors->push_back(absl::StrCat("node ", i, ": ", line.substr(6)));
    } else if (line.rfind("declared ", 0) != 0) {
      return absl::InternalError(absl::StrCat("node ", i, ": expected '", word,
                                              "', got '", line, "'"));
    }
  }
}

/// Every complete operation of every thread, plus the write each thread was
/// doing if it never returned.
std::vector<RegisterOp> CollectOps(const SharedLogs& logs,
                                   const StressOptions& o,
                                   StressResult* result) {
  std::vector<RegisterOp> ops;
  for (int n = 0; n < o.nodes; ++n) {
    for (int t = 0; t < o.threads; ++t) {
      const LogHeader* h = logs.Header(n, t);
      const LogRecord* rec = logs.Records(n, t);
      const uint64_t count = h->count.load(std::memory_order_acquire);
      result->full_logs += h->full.load(std::memory_order_relaxed);
      result->reads_seen += h->reads_seen.load(std::memory_order_relaxed);
      const uint32_t process = static_cast<uint32_t>(n * 256 + t);
      for (uint64_t i = 0; i < count; ++i) {
        ops.push_back({.kind = static_cast<RegisterOp::Kind>(rec[i].kind),
                       .reg = rec[i].reg,
                       .value = rec[i].value,
                       .start_ns = rec[i].start_ns,
                       .end_ns = rec[i].end_ns,
                       .process = process});
      }
      if (count < logs.capacity() && rec[count].start_ns != 0 &&
          rec[count].kind == RegisterOp::kWrite && rec[count].end_ns == 0) {
        ops.push_back({.kind = RegisterOp::kWrite,
                       .reg = rec[count].reg,
                       .value = rec[count].value,
                       .start_ns = rec[count].start_ns,
                       .end_ns = RegisterOp::kPending,
                       .process = process});
      }
    }
  }
  return ops;
}

absl::Status DriveHistory(std::vector<Child>& children, const StressOptions& o,
                          StressResult* result) {
  const absl::Time deadline = absl::Now() + absl::Seconds(o.timeout_s);
  std::vector<std::string> errors;
  std::set<std::string> lost;  // "guest page gpa=0x..." reported lost
  for (int i = 0; i < o.nodes; ++i) {
    SSIHV_RETURN_IF_ERROR(
        NextReport(children[i], i, "ready", deadline, &lost, &errors).status());
  }
  std::vector<pid_t> pids;
  for (const Child& c : children) pids.push_back(c.pid);
  CpuHogs hogs(o.hogs);
  Adversary adversary({.sigstop_max_ms = o.sigstop_max_ms,
                       .kill_node = o.kill_node,
                       .run = absl::Seconds(o.seconds),
                       .seed = o.seed},
                      pids, [&children, &o](int dead) {
                        for (int i = 0; i < o.nodes; ++i) {
                          if (i != dead)
                            WriteLine(children[i].cmd,
                                      absl::StrCat("dead ", dead));
                        }
                      });
  const auto t0 = std::chrono::steady_clock::now();
  for (Child& c : children) WriteLine(c.cmd, "go");
  adversary.Start();
  absl::Status st;
  for (int i = 0; i < o.nodes && st.ok(); ++i) {
    auto done = NextReport(children[i], i, "done", deadline, &lost, &errors);
    if (!done.ok() && i == adversary.killed()) continue;  // its pipe closed
    if (!done.ok()) {
      st = done.status();
      if (absl::IsUnavailable(st)) {  // the node died: say how
        st = absl::UnavailableError(
            absl::StrCat("node ", i, " ended before reporting 'done': ",
                         DescribeEnd(children[i].pid, absl::Seconds(5)), " (",
                         st.message(), ")"));
      }
      break;
    }
    result->stuck_threads += std::strtoull(done->c_str() + 5, nullptr, 10);
  }
  adversary.Stop();
  result->wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  result->killed = adversary.killed();
  result->stops = adversary.stops();
  if (!st.ok() && !errors.empty()) {
    // What the nodes reported before it went wrong is the first clue.
    return absl::Status(st.code(),
                        absl::StrCat(st.message(), "; the nodes reported: ",
                                     absl::StrJoin(errors, "; ")));
  }
  SSIHV_RETURN_IF_ERROR(st);
  for (int i = 0; i < o.nodes; ++i) {
    if (i == result->killed) continue;
    WriteLine(children[i].cmd, "stats");
    SSIHV_ASSIGN_OR_RETURN(
        std::string stats,
        NextReport(children[i], i, "stats", deadline, &lost, &errors));
    result->nodes[i].stats_json = stats.substr(6);
    WriteLine(children[i].cmd, "exit");
  }
  result->lost_pages = lost.size();
  // A failure that is not the expected consequence of a kill is a
  // violation: the DSM must not stop the guest on its own.
  if (result->killed < 0) {
    for (std::string& e : errors) result->violations.push_back(std::move(e));
    if (result->lost_pages > 0) {
      result->violations.push_back(
          absl::StrCat(result->lost_pages, " page(s) lost without a death"));
    }
    if (result->stuck_threads > 0) {
      result->violations.push_back(absl::StrCat(
          result->stuck_threads, " thread(s) still blocked in a fault ",
          absl::FormatDuration(kGrace), " after the run"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StressResult> RunHistoryStress(const StressOptions& o) {
  if (o.nodes < 2 || o.nodes > 8 || o.threads < 1 || o.threads > 255 ||
      !(o.seconds > 0) || o.registers_per_node < 1 || o.write_percent < 0 ||
      o.write_percent > 100 || o.log_ops < 16 || o.sigstop_max_ms < 0 ||
      o.hogs < 0 || (o.transport != "tcp" && o.transport != "rdma")) {
    return absl::InvalidArgumentError(
        "StressOptions (history): nodes in [2, 8], threads in [1, 255], "
        "seconds > 0, registers_per_node >= 1, write_percent in [0, 100], "
        "log_ops >= 16, sigstop_max_ms >= 0, hogs >= 0, transport tcp or "
        "rdma");
  }
  std::unique_ptr<NetemNamespace> netns;
  if (!o.netem.empty()) {
    SSIHV_ASSIGN_OR_RETURN(netns, NetemNamespace::Enter(o.netem));
  }
  char tmpl[] = "/tmp/ssihv-dsm-history-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return base::LastErrnoStatus("mkdtemp");
  const std::string dir = tmpl;
  SSIHV_ASSIGN_OR_RETURN(std::string config, testing::WriteClusterConfig(
                                                 dir, o.nodes, 2, o.transport));
  SSIHV_ASSIGN_OR_RETURN(SharedLogs logs,
                         SharedLogs::Create(o.nodes, o.threads, o.log_ops));

  StressResult result;
  result.nodes.resize(o.nodes);
  std::vector<Child> children;
  absl::Status st;
  for (int i = 0; i < o.nodes && st.ok(); ++i) {
    auto c = SpawnNode([&config, &o, &logs, i](int cmd, int report) {
      return HistoryNodeMain(config, o, i, logs, cmd, report);
    });
    if (c.ok()) {
      children.push_back(*std::move(c));
    } else {
      st = c.status();
    }
  }
  if (st.ok()) st = DriveHistory(children, o, &result);
  const pid_t killed =
      result.killed >= 0 ? children[result.killed].pid : pid_t{-1};
  absl::Status reaped = ReapNodes(children, /*kill=*/!st.ok(), killed);
  if (st.ok()) st = reaped;
  ::unlink((dir + "/cluster.json").c_str());
  ::unlink((dir + "/secret").c_str());
  ::rmdir(dir.c_str());
  SSIHV_RETURN_IF_ERROR(st);

  HistoryCheck check = CheckLinearizable(CollectOps(logs, o, &result));
  result.registers = check.registers;
  result.reads = check.reads;
  result.writes = check.writes;
  result.pending_writes = check.pending_writes;
  result.ops = check.reads + check.writes;
  for (std::string& v : check.violations) {
    result.violations.push_back("not linearizable: " + std::move(v));
  }
  if (check.violation_count > check.violations.size()) {
    result.violations.push_back(
        absl::StrCat(check.violation_count - check.violations.size(),
                     " more linearizability violation(s)"));
  }
  return result;
}

}  // namespace ssihv::dsm_stress
