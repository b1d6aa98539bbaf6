#include "calibrate_node.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "options.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/pager/dsm_node.h"
#include "ssihv/rdmax/transport.h"

namespace ssihv::ctl {
namespace {

using Clock = std::chrono::steady_clock;

// Node 0's `turn` word: 1 + the initiator measuring now, or one of these.
constexpr uint64_t kFinished = ~uint64_t{0};
constexpr uint64_t kAborted = ~uint64_t{0} - 1;

// Page 0 of every node's RAM. Only its home writes it; the others read it
// (remote read faults), polling every millisecond.
struct ControlPage {
  uint64_t ready;   // the windows of this home hold their pattern
  uint64_t turn;    // node 0 only (see above)
  uint64_t done;    // this node's row below is complete
  uint64_t failed;  // this node failed; `error` says why
  uint64_t latency_ns[cluster::kMaxNodes];      // double bits
  uint64_t bandwidth_mbps[cluster::kMaxNodes];  // double bits
  char error[512];
};
static_assert(sizeof(ControlPage) <= kCalibratePage);

uint64_t Load(const uint64_t& word) {
  return std::atomic_ref<const uint64_t>(word).load(std::memory_order_acquire);
}
void Store(uint64_t& word, uint64_t v) {
  std::atomic_ref<uint64_t>(word).store(v, std::memory_order_release);
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Exits the process when the run outlives its deadline: a fault waiting on
// a dead peer never returns, so no code path could notice otherwise.
class Watchdog {
 public:
  Watchdog(uint32_t self, absl::Duration timeout)
      : thread_([this, self, timeout] {
          std::unique_lock<std::mutex> l(mu_);
          if (!cv_.wait_for(l, absl::ToChronoSeconds(timeout),
                            [this] { return done_; })) {
            std::fprintf(stderr,
                         "ssihvctl calibrate: node %u: timed out after %s "
                         "(%s)\n",
                         self, absl::FormatDuration(timeout).c_str(),
                         phase_.load());
            _exit(kExitCalibrate);
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Phase(const char* what) { phase_.store(what); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<const char*> phase_{"starting"};
  std::thread thread_;
};

class CalibrationNode {
 public:
  CalibrationNode(const cluster::ClusterConfig& config, uint32_t self,
                  const NodeRunOptions& o, pager::DsmNode* dsm,
                  rdmax::Transport* transport, Watchdog* watchdog)
      : config_(config),
        layout_(config),
        self_(self),
        o_(o),
        plan_(o.plan),
        dsm_(dsm),
        transport_(transport),
        watchdog_(watchdog) {}

  absl::Status Run();

 private:
  uint8_t* PageOf(uint32_t node, uint64_t page) const {
    return dsm_->memory().data() + layout_.RangesOfNode(node)[0].ram_offset +
           page * kCalibratePage;
  }
  ControlPage& Control(uint32_t node) const {
    return *reinterpret_cast<ControlPage*>(PageOf(node, 0));
  }
  // Polls `done` every millisecond until it holds; false past the deadline.
  template <typename Pred>
  absl::Status WaitUntil(const char* what, Pred done) {
    watchdog_->Phase(what);
    while (!done()) {
      if (absl::Now() > deadline_) {
        return absl::DeadlineExceededError(absl::StrCat("timed out ", what));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return absl::OkStatus();
  }
  void FillWindows();
  absl::Status MeasureRemote(uint32_t home, double* latency_ns,
                             double* bandwidth_mbps);
  void MeasureLocal(double* latency_ns, double* bandwidth_mbps);
  absl::Status MeasureRow(std::vector<double>* latency,
                          std::vector<double>* bandwidth);
  absl::Status Conduct();
  absl::Status Follow();
  void Fail(const absl::Status& st);

  const cluster::ClusterConfig& config_;
  const cluster::GuestLayout layout_;
  const uint32_t self_;
  const NodeRunOptions& o_;
  const CalibrationPlan plan_;
  pager::DsmNode* dsm_;
  rdmax::Transport* transport_;
  Watchdog* watchdog_;
  absl::Time deadline_ = absl::Now() + o_.timeout;
};

void CalibrationNode::FillWindows() {
  for (uint32_t i = 0; i < plan_.nodes; ++i) {
    if (i == self_) continue;
    for (uint64_t p = 0; p < plan_.window_pages; ++p) {
      *reinterpret_cast<volatile uint64_t*>(PageOf(
          self_, plan_.WindowPage(i, p))) = CalibrationPattern(self_, i, p);
    }
  }
}

absl::Status CalibrationNode::MeasureRemote(uint32_t home, double* latency_ns,
                                            double* bandwidth_mbps) {
  auto check = [&](uint64_t p, uint64_t v) -> absl::Status {
    if (v == CalibrationPattern(home, self_, p)) return absl::OkStatus();
    return absl::DataLossError(
        absl::StrCat("node ", self_, " read page ", p, " of node ", home,
                     "'s window: 0x", absl::Hex(v), " instead of 0x",
                     absl::Hex(CalibrationPattern(home, self_, p)),
                     " (stale or wrong data)"));
  };
  // Latency: one read fault at a time, each timed by the faulting thread,
  // walking the pages downwards: an upward walk is what the DSM's remote
  // read-ahead prefetches, and the HMAT latency is that of one access.
  std::vector<double> ns;
  for (uint64_t p = plan_.latency_pages; p-- > 0;) {
    auto* word = reinterpret_cast<volatile uint64_t*>(
        PageOf(home, plan_.WindowPage(self_, p)));
    const auto t0 = Clock::now();
    const uint64_t v = *word;
    ns.push_back(Seconds(t0, Clock::now()) * 1e9);
    SSIHV_RETURN_IF_ERROR(check(p, v));
  }
  std::nth_element(ns.begin(), ns.begin() + ns.size() / 2, ns.end());
  *latency_ns = ns[ns.size() / 2];
  // Bandwidth: several threads fault at once (as several vCPUs do), each
  // reading whole pages.
  const uint64_t first = plan_.latency_pages, last = plan_.window_pages;
  std::vector<absl::Status> status(o_.threads);
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int t = 0; t < o_.threads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t p = first + t; p < last; p += o_.threads) {
        auto* page = reinterpret_cast<const volatile uint64_t*>(
            PageOf(home, plan_.WindowPage(self_, p)));
        uint64_t sum = 0;
        for (size_t w = 1; w < kCalibratePage / 8; ++w) sum += page[w];
        absl::Status st = check(p, page[0] + sum);  // the rest is zeros
        if (!st.ok() && status[t].ok()) status[t] = st;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = Seconds(t0, Clock::now());
  for (const absl::Status& st : status) SSIHV_RETURN_IF_ERROR(st);
  *bandwidth_mbps =
      static_cast<double>((last - first) * kCalibratePage) / seconds / 1e6;
  return absl::OkStatus();
}

void CalibrationNode::MeasureLocal(double* latency_ns, double* bandwidth_mbps) {
  // The buffer's pages come in through the pager like a guest's first
  // touch; what is measured after is the memory the guest then uses.
  auto* buf =
      reinterpret_cast<uint64_t*>(PageOf(self_, plan_.LocalFirstPage()));
  const size_t words = plan_.local_bytes / 8;
  // Latency: a dependent-load chase through one random cycle over every
  // 64-byte line (Sattolo's shuffle), so neither prefetcher nor cache helps.
  constexpr size_t kStride = 64 / 8;
  const size_t lines = words / kStride;
  std::vector<uint32_t> order(lines);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(0x5eed + self_);
  for (size_t i = lines - 1; i > 0; --i) {
    std::swap(order[i],
              order[std::uniform_int_distribution<size_t>(0, i - 1)(rng)]);
  }
  for (size_t i = 0; i < lines; ++i) {
    buf[order[i] * kStride] = order[(i + 1) % lines] * kStride;
  }
  volatile uint64_t sink = 0;
  uint64_t at = 0;
  for (size_t i = 0; i < lines; ++i) at = buf[at];  // warm the TLB
  // Timed in segments, the median kept: a host that preempts this thread
  // for a while inflates one segment, not the result.
  constexpr int kSegments = 15;
  const size_t steps = std::max<size_t>(lines / kSegments, 1);
  std::vector<double> per_load;
  for (int s = 0; s < kSegments; ++s) {
    const auto t0 = Clock::now();
    for (size_t i = 0; i < steps; ++i) at = buf[at];
    per_load.push_back(Seconds(t0, Clock::now()) * 1e9 /
                       static_cast<double>(steps));
  }
  std::nth_element(per_load.begin(), per_load.begin() + kSegments / 2,
                   per_load.end());
  *latency_ns = per_load[kSegments / 2];
  sink = at;
  // Bandwidth: the best of three sequential passes.
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t1 = Clock::now();
    uint64_t sum = 0;
    for (size_t w = 0; w < words; ++w) sum += buf[w];
    sink = sink + sum;
    best = std::max(best, static_cast<double>(plan_.local_bytes) /
                              Seconds(t1, Clock::now()) / 1e6);
  }
  *bandwidth_mbps = best;
}

absl::Status CalibrationNode::MeasureRow(std::vector<double>* latency,
                                         std::vector<double>* bandwidth) {
  latency->assign(plan_.nodes, 0);
  bandwidth->assign(plan_.nodes, 0);
  for (uint32_t j = 0; j < plan_.nodes; ++j) {
    if (j == self_) {
      MeasureLocal(&(*latency)[j], &(*bandwidth)[j]);
    } else {
      SSIHV_RETURN_IF_ERROR(MeasureRemote(j, &(*latency)[j], &(*bandwidth)[j]));
    }
    std::fprintf(stderr,
                 "ssihvctl calibrate: node %u -> node %u: latency %.0f ns, "
                 "bandwidth %.0f MB/s\n",
                 self_, j, (*latency)[j], (*bandwidth)[j]);
  }
  return absl::OkStatus();
}

void CalibrationNode::Fail(const absl::Status& st) {
  ControlPage& c = Control(self_);
  std::string msg(st.message());
  msg.resize(std::min(msg.size(), sizeof(c.error) - 1));
  std::memcpy(c.error, msg.c_str(), msg.size() + 1);
  Store(c.failed, 1);
}

absl::Status CalibrationNode::Follow() {
  ControlPage& conductor = Control(0);
  SSIHV_RETURN_IF_ERROR(WaitUntil("waiting for node 0 to give the turn", [&] {
    const uint64_t t = Load(conductor.turn);
    return t == self_ + 1 || t == kAborted;
  }));
  if (Load(conductor.turn) == kAborted) {
    return absl::AbortedError("node 0 aborted the calibration");
  }
  watchdog_->Phase("measuring");
  std::vector<double> latency, bandwidth;
  absl::Status st = MeasureRow(&latency, &bandwidth);
  ControlPage& mine = Control(self_);
  if (st.ok()) {
    for (uint32_t j = 0; j < plan_.nodes; ++j) {
      mine.latency_ns[j] = std::bit_cast<uint64_t>(latency[j]);
      mine.bandwidth_mbps[j] = std::bit_cast<uint64_t>(bandwidth[j]);
    }
    Store(mine.done, 1);
  } else {
    Fail(st);
  }
  // Node 0 reads this page after our `done`: stay until it says it has.
  SSIHV_RETURN_IF_ERROR(WaitUntil("waiting for node 0 to finish", [&] {
    const uint64_t t = Load(conductor.turn);
    return t == kFinished || t == kAborted;
  }));
  if (!st.ok()) return st;
  return Load(conductor.turn) == kFinished
             ? absl::OkStatus()
             : absl::AbortedError("node 0 aborted the calibration");
}

absl::Status CalibrationNode::Conduct() {
  ControlPage& mine = Control(0);
  Measurements m;
  m.latency_ns.resize(plan_.nodes);
  m.bandwidth_mbps.resize(plan_.nodes);
  absl::Status st;
  for (uint32_t i = 0; i < plan_.nodes && st.ok(); ++i) {
    if (i == 0) {
      st = MeasureRow(&m.latency_ns[0], &m.bandwidth_mbps[0]);
      continue;
    }
    Store(mine.turn, i + 1);
    ControlPage& theirs = Control(i);
    st = WaitUntil("waiting for a node's row", [&] {
      return Load(theirs.done) == 1 || Load(theirs.failed) == 1;
    });
    if (st.ok() && Load(theirs.failed) == 1) {
      st = absl::AbortedError(absl::StrCat("node ", i, ": ", theirs.error));
    }
    for (uint32_t j = 0; st.ok() && j < plan_.nodes; ++j) {
      m.latency_ns[i].push_back(std::bit_cast<double>(theirs.latency_ns[j]));
      m.bandwidth_mbps[i].push_back(
          std::bit_cast<double>(theirs.bandwidth_mbps[j]));
    }
  }
  Store(mine.turn, st.ok() ? kFinished : kAborted);
  if (st.ok()) {
    absl::StatusOr<cluster::ClusterConfig> measured =
        MeasuredConfig(config_, m);
    st = measured.status();
    if (st.ok()) {
      st = base::WriteFileAtomically(
          o_.out, cluster::ClusterConfigToJson(*measured) + "\n");
    }
    if (st.ok()) {
      std::printf("%s", FormatMeasurements(*measured).c_str());
      std::printf("ssihvctl calibrate: wrote %s\n", o_.out.c_str());
      std::fflush(stdout);
    }
  }
  // The others read our `turn` before they leave: serve them until then.
  absl::Status left = WaitUntil("waiting for the other nodes to leave", [&] {
    for (uint32_t p = 1; p < plan_.nodes; ++p) {
      if (transport_->IsConnected(p)) return false;
    }
    return true;
  });
  return st.ok() ? left : st;
}

absl::Status CalibrationNode::Run() {
  watchdog_->Phase("filling the windows");
  FillWindows();
  Store(Control(self_).ready, 1);
  SSIHV_RETURN_IF_ERROR(WaitUntil("waiting for every node's windows", [&] {
    for (uint32_t j = 0; j < plan_.nodes; ++j) {
      if (Load(Control(j).ready) != 1) return false;
    }
    return true;
  }));
  return self_ == 0 ? Conduct() : Follow();
}

}  // namespace

absl::Status RunCalibrationNode(const cluster::ClusterConfig& config,
                                uint32_t self, const NodeRunOptions& options) {
  Watchdog watchdog(self, options.timeout);
  rdmax::TransportOptions topt = pager::DsmTransportOptions();
  topt.secret = options.secret;
  SSIHV_ASSIGN_OR_RETURN(std::unique_ptr<rdmax::Transport> transport,
                         rdmax::CreateTransport(config, self, topt));
  rdmax::Transport* t = transport.get();  // owned by the DsmNode from here
  pager::DsmOptions dopt;
  dopt.connect_timeout = options.timeout;
  dopt.on_error = [self](const absl::Status& st) {
    // A lost page or protocol error leaves faults blocked: end it here.
    std::fprintf(stderr, "ssihvctl calibrate: node %u: DSM: %s\n", self,
                 std::string(st.message()).c_str());
    _exit(kExitCalibrate);
  };
  SSIHV_ASSIGN_OR_RETURN(
      std::unique_ptr<pager::DsmNode> dsm,
      pager::DsmNode::Create(config, self, std::move(transport), dopt));
  watchdog.Phase("waiting for every peer to connect");
  SSIHV_RETURN_IF_ERROR(dsm->Start());
  absl::Status st =
      CalibrationNode(config, self, options, dsm.get(), t, &watchdog).Run();
  dsm->Stop();
  return st;
}

}  // namespace ssihv::ctl
