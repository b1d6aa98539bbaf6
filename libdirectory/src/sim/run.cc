// Seeded random executions: a random workload, random delays, drops and
// crashes, random scheduling until the network calms, then fair
// round-robin scheduling under the liveness bound.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sim/common.h"
#include "sim/world.h"
#include "ssihv/directory/sim.h"

namespace ssihv::directory::sim {
namespace {

using internal::Event;
using internal::EventKind;
using internal::Op;
using internal::Rng;
using internal::World;

std::vector<std::vector<Op>> MakeWorkload(const Config& config,
                                          uint32_t threads, PageId pages,
                                          Rng& rng) {
  std::vector<std::vector<Op>> ops(threads);
  for (auto& list : ops) {
    for (uint32_t i = 0; i < config.ops; ++i) {
      Op op;
      op.page = rng.Below(pages);
      op.access =
          rng.Percent(config.write_percent) ? Access::kWrite : Access::kRead;
      list.push_back(op);
    }
  }
  return ops;
}

// Up to max_crashes crash times within the busy part of a run (about five
// steps per operation).
std::vector<uint64_t> PlanCrashes(const Config& config, uint64_t total_ops,
                                  Rng& rng) {
  std::vector<uint64_t> steps;
  if (!config.crash) return steps;
  uint32_t max = config.max_crashes != 0
                     ? config.max_crashes
                     : std::min<uint32_t>(2, config.nodes - 1);
  uint64_t k = rng.Below(max + 1);
  uint64_t window = total_ops * 4 + 20;
  for (uint64_t i = 0; i < k; ++i) steps.push_back(1 + rng.Below(window));
  std::sort(steps.begin(), steps.end());
  return steps;
}

void CrashSomeNode(const Config& config, World& world, Rng& rng) {
  std::vector<NodeId> live;
  for (NodeId n = 0; n < config.nodes; ++n) {
    if (!world.dead(n)) live.push_back(n);
  }
  world.Apply({EventKind::kCrash, live[rng.Below(live.size())], {}, false});
}

// Random until the network calms; then fair: round-robin over event
// sources (threads, channels, fetches, notices, deferred messages).
const Event& Pick(const World& world, const std::vector<Event>& events,
                  Rng& rng, uint32_t* cursor) {
  if (!world.calm()) return events[rng.Below(events.size())];
  auto key = [](const Event& ev) {
    return static_cast<uint32_t>(ev.kind) * 100000 + ev.index;
  };
  const Event* e = &events.front();
  for (const Event& ev : events) {
    if (key(ev) >= *cursor) {
      e = &ev;
      break;
    }
  }
  *cursor = key(*e) + 1;
  return *e;
}

void Summarize(const Config& config, const World& w, RunResult* r) {
  if (w.failed()) {
    r->ok = false;
    r->violation = w.violation();
  }
  if (!r->ok) r->violation.trace = w.FormatTrace(config.trace_lines);
  r->steps = w.steps();
  r->reads = w.reads();
  r->writes = w.writes();
  r->lost_ops = w.lost_ops();
  r->crashes = w.crashes();
  r->calm_steps = w.calm() ? w.steps() - w.calm_step() : 0;
  r->max_calm_wait = w.max_calm_wait();
  r->liveness_bound = w.LivenessBound();
  for (const Node& n : w.nodes()) {
    StatsSnapshot s = n.Stats();
    StatsSnapshot& t = r->totals;
    t.faults_local += s.faults_local;
    t.faults_read_miss += s.faults_read_miss;
    t.faults_write_miss += s.faults_write_miss;
    t.faults_upgrade += s.faults_upgrade;
    t.faults_joined += s.faults_joined;
    t.faults_lost += s.faults_lost;
    t.read_txns += s.read_txns;
    t.write_txns += s.write_txns;
    t.invalidations += s.invalidations;
    t.ownership_transfers += s.ownership_transfers;
    t.pull_grants += s.pull_grants;
    t.requests_queued += s.requests_queued;
    t.pages_lost += s.pages_lost;
    t.run_requests += s.run_requests;
    t.run_pages_requested += s.run_pages_requested;
    t.run_grants += s.run_grants;
    t.run_pages_granted += s.run_pages_granted;
    t.write_run_requests += s.write_run_requests;
    t.write_run_pages_requested += s.write_run_pages_requested;
    t.write_run_pages_granted += s.write_run_pages_granted;
    t.write_run_pages_refused += s.write_run_pages_refused;
    t.local_messages += s.local_messages;
    t.dropped_from_dead += s.dropped_from_dead;
    t.page_bytes_sent += s.page_bytes_sent;
    for (int i = 0; i < kNumMsgTypes; ++i) {
      t.sent[i] += s.sent[i];
      t.received[i] += s.received[i];
    }
  }
}

}  // namespace

RunResult RunSeed(const Config& config, uint64_t seed) {
  RunResult result;
  result.seed = seed;
  absl::StatusOr<PageSpace> space = internal::SpaceFor(config);
  if (!space.ok()) {
    result.ok = false;
    result.violation = {"config", space.status().ToString(), ""};
    return result;
  }
  Rng rng(seed);
  World world(config, *space, internal::MakeNodes(config, *space), &rng);
  world.SetWorkload(
      MakeWorkload(config, world.num_threads(), space->num_pages(), rng));
  uint64_t total_ops = uint64_t{config.ops} * world.num_threads();
  // The network calms at a random point, often while faults are still in
  // flight, so the liveness bound is checked on real work.
  uint64_t chaos_end = total_ops * (1 + rng.Below(8)) + 20;
  std::vector<uint64_t> crash_steps = PlanCrashes(config, total_ops, rng);
  uint64_t step_limit = chaos_end + 200000;
  std::vector<Event> events;
  uint32_t cursor = 0;
  while (!world.failed()) {
    uint64_t step = world.steps();
    if (!crash_steps.empty() && step >= crash_steps.front()) {
      crash_steps.erase(crash_steps.begin());
      if (world.CanCrash()) CrashSomeNode(config, world, rng);
      continue;
    }
    if (!world.calm() && step >= chaos_end) world.SetCalm();
    events.clear();
    world.Enabled(/*timed=*/true, &events);
    if (events.empty()) {
      uint64_t next = world.NextReady();
      if (next != UINT64_MAX) {
        world.AdvanceTime(next);
        continue;
      }
      if (world.Finished()) break;
      result.ok = false;
      result.violation = {"liveness",
                          "deadlock: threads wait but nothing can happen:" +
                              world.DescribeStuck(),
                          ""};
      break;
    }
    if (step > step_limit) {
      result.ok = false;
      result.violation = {"liveness", "step limit exceeded", ""};
      break;
    }
    world.Apply(Pick(world, events, rng, &cursor));
  }
  Summarize(config, world, &result);
  return result;
}

absl::Status ParseFaults(const std::string& list, Config* config) {
  config->reorder = config->drop = config->crash = false;
  if (list.empty() || list == "none") return absl::OkStatus();
  for (absl::string_view f : absl::StrSplit(list, ',')) {
    if (f == "reorder") {
      config->reorder = true;
    } else if (f == "drop") {
      config->drop = true;
    } else if (f == "crash") {
      config->crash = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--faults: unknown fault '", f, "' (reorder, drop, crash)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseBug(const std::string& name, Config* config) {
  config->bug = TestBug::kNone;
  config->driver_early_send = false;
  config->driver_answers_unordered = false;
  if (name == "none") return absl::OkStatus();
  if (name == "skip-invalidation") {
    config->bug = TestBug::kSkipInvalidation;
  } else if (name == "skip-downgrade") {
    config->bug = TestBug::kSkipDowngrade;
  } else if (name == "run-skip-downgrade") {
    config->bug = TestBug::kRunSkipDowngrade;
  } else if (name == "write-run-not-pristine") {
    config->bug = TestBug::kWriteRunNotPristine;
  } else if (name == "downgrade-skip-protect") {
    config->bug = TestBug::kDowngradeSkipProtect;
    config->downgrade = true;
  } else if (name == "early-unblock") {
    config->bug = TestBug::kEarlyUnblock;
  } else if (name == "driver-early-send") {
    config->driver_early_send = true;
  } else if (name == "answers-unordered") {
    config->driver_answers_unordered = true;
    config->answer_lanes = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--inject-bug: unknown bug '", name,
                     "' (skip-invalidation, skip-downgrade, "
                     "run-skip-downgrade, write-run-not-pristine, "
                     "downgrade-skip-protect, early-unblock, "
                     "driver-early-send, answers-unordered)"));
  }
  return absl::OkStatus();
}

}  // namespace ssihv::directory::sim
