// Seeded random executions and the exhaustive explorer.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/numeric/int128.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "sim/world.h"
#include "ssihv/directory/sim.h"

namespace ssihv::directory::sim {
namespace {

using internal::Event;
using internal::EventKind;
using internal::Op;
using internal::Rng;
using internal::World;

absl::StatusOr<PageSpace> SpaceFor(const Config& c) {
  if (c.nodes == 0 || c.nodes > kMaxNodes || c.pages == 0) {
    return absl::InvalidArgumentError("sim: need 1..64 nodes and >= 1 page");
  }
  std::vector<uint64_t> counts(c.nodes, c.pages / c.nodes);
  for (uint64_t i = 0; i < c.pages % c.nodes; ++i) ++counts[i];
  return PageSpace::FromPageCounts(counts);
}

std::vector<Node> MakeNodes(const Config& c, const PageSpace& space) {
  std::vector<Node> nodes;
  Node::Options options;
  options.allow_pull = c.pull;
  options.test_bug = c.bug;
  for (NodeId n = 0; n < c.nodes; ++n) {
    nodes.push_back(*Node::Create(space, n, options));
  }
  return nodes;
}

// 128-bit hash of a state string (two multiply-mix lanes).
absl::uint128 Hash128(const std::string& s) {
  uint64_t a = 0x243f6a8885a308d3ull ^ s.size();
  uint64_t b = 0x13198a2e03707344ull;
  size_t i = 0;
  auto mix = [](uint64_t h, uint64_t v, uint64_t k) {
    h ^= v * k;
    h = (h << 31) | (h >> 33);
    return h * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  };
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t v;
    std::memcpy(&v, s.data() + i, 8);
    a = mix(a, v, 0xff51afd7ed558ccdull);
    b = mix(b, v ^ a, 0xc4ceb9fe1a85ec53ull);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  a = mix(a, tail, 0xff51afd7ed558ccdull);
  b = mix(b, tail ^ a, 0xc4ceb9fe1a85ec53ull);
  a ^= a >> 29;
  b ^= b >> 31;
  return absl::MakeUint128(a * 0xbf58476d1ce4e5b9ull,
                           b * 0x94d049bb133111ebull);
}

void Totals(const World& w, RunResult* r) {
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
  absl::StatusOr<PageSpace> space = SpaceFor(config);
  if (!space.ok()) {
    result.ok = false;
    result.violation.invariant = "config";
    result.violation.detail = space.status().ToString();
    return result;
  }
  Rng rng(seed);
  World world(config, *space, MakeNodes(config, *space), &rng);
  std::vector<std::vector<Op>> ops(world.num_threads());
  for (auto& list : ops) {
    for (uint32_t i = 0; i < config.ops; ++i) {
      Op op;
      op.page = rng.Below(space->num_pages());
      op.access =
          rng.Percent(config.write_percent) ? Access::kWrite : Access::kRead;
      list.push_back(op);
    }
  }
  world.SetWorkload(std::move(ops));
  uint64_t total_ops = uint64_t{config.ops} * world.num_threads();
  // The network calms at a random point, often while faults are still in
  // flight, so the liveness bound is checked on real work.
  uint64_t chaos_end = total_ops * (1 + rng.Below(8)) + 20;
  std::vector<uint64_t> crash_steps;
  if (config.crash) {
    uint32_t max = config.max_crashes != 0
                       ? config.max_crashes
                       : std::min<uint32_t>(2, config.nodes - 1);
    uint64_t k = rng.Below(max + 1);
    // Within the busy part of a run (about 5 steps per operation).
    uint64_t window = total_ops * 4 + 20;
    for (uint64_t i = 0; i < k; ++i) {
      crash_steps.push_back(1 + rng.Below(window));
    }
    std::sort(crash_steps.begin(), crash_steps.end());
  }
  uint64_t step_limit = chaos_end + 200000;
  std::vector<Event> events;
  uint32_t cursor = 0;
  while (!world.failed()) {
    uint64_t step = world.steps();
    if (!crash_steps.empty() && step >= crash_steps.front()) {
      crash_steps.erase(crash_steps.begin());
      if (world.CanCrash()) {
        std::vector<NodeId> live;
        for (NodeId n = 0; n < config.nodes; ++n) {
          if (!world.dead(n)) live.push_back(n);
        }
        world.Apply(
            {EventKind::kCrash, live[rng.Below(live.size())], {}, false});
        continue;
      }
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
      result.violation.invariant = "liveness";
      result.violation.detail =
          "deadlock: threads wait but nothing can happen:" +
          world.DescribeStuck();
      break;
    }
    if (step > step_limit) {
      result.ok = false;
      result.violation.invariant = "liveness";
      result.violation.detail = "step limit exceeded";
      break;
    }
    const Event* e;
    if (world.calm()) {
      // Fair: round-robin over event sources (threads then channels...).
      auto key = [&](const Event& ev) {
        return static_cast<uint32_t>(ev.kind) * 100000 + ev.index;
      };
      e = &events.front();
      for (const Event& ev : events) {
        if (key(ev) >= cursor) {
          e = &ev;
          break;
        }
      }
      cursor = key(*e) + 1;
    } else {
      e = &events[rng.Below(events.size())];
    }
    world.Apply(*e);
  }
  if (world.failed()) {
    result.ok = false;
    result.violation = world.violation();
  }
  if (!result.ok)
    result.violation.trace = world.FormatTrace(config.trace_lines);
  result.steps = world.steps();
  result.reads = world.reads();
  result.writes = world.writes();
  result.lost_ops = world.lost_ops();
  result.crashes = world.crashes();
  result.calm_steps = world.calm() ? world.steps() - world.calm_step() : 0;
  result.max_calm_wait = world.max_calm_wait();
  result.liveness_bound = world.LivenessBound();
  Totals(world, &result);
  return result;
}

ExploreResult Explore(const Config& config, uint64_t max_states) {
  ExploreResult result;
  absl::StatusOr<PageSpace> space = SpaceFor(config);
  if (!space.ok()) {
    result.ok = false;
    result.violation.invariant = "config";
    result.violation.detail = space.status().ToString();
    return result;
  }
  Config quiet = config;
  quiet.trace_lines = 0;
  struct Frame {
    World world;
    std::vector<Event> events;
    size_t next = 0;
    absl::uint128 hash;
  };
  absl::flat_hash_set<absl::uint128> visited;
  absl::flat_hash_set<absl::uint128> on_stack;
  std::vector<Frame> stack;
  std::string buf;
  auto push = [&](World w) {
    buf.clear();
    w.AppendState(&buf);
    absl::uint128 h = Hash128(buf);
    Frame f{std::move(w), {}, 0, h};
    f.world.Enabled(/*timed=*/false, &f.events);
    visited.insert(h);
    on_stack.insert(h);
    ++result.states;
    if (f.events.empty()) {
      ++result.terminal;
    }
    stack.push_back(std::move(f));
    result.max_depth = std::max<uint32_t>(result.max_depth, stack.size());
  };
  auto fail_with_path = [&](Violation v, const Event* last) {
    // Re-run the path from the start with tracing on for a readable trace.
    Config traced = config;
    traced.trace_lines = static_cast<uint32_t>(stack.size() + 2);
    World replay(traced, *space, MakeNodes(traced, *space), nullptr);
    for (size_t i = 0; i + 1 < stack.size(); ++i) {
      replay.Apply(stack[i].events[stack[i].next - 1]);
    }
    if (last != nullptr && !replay.failed()) replay.Apply(*last);
    v.trace = replay.FormatTrace(traced.trace_lines);
    result.ok = false;
    result.violation = std::move(v);
  };
  push(World(quiet, *space, MakeNodes(quiet, *space), nullptr));
  while (!stack.empty() && result.ok) {
    Frame& top = stack.back();
    if (top.next == top.events.size()) {
      if (top.events.empty() && !top.world.Finished()) {
        fail_with_path({"liveness",
                        "stuck: work left but no event enabled:" +
                            top.world.DescribeStuck(),
                        ""},
                       nullptr);
        break;
      }
      on_stack.erase(top.hash);
      stack.pop_back();
      continue;
    }
    const Event e = top.events[top.next++];
    World next = top.world;
    next.Apply(e);
    ++result.transitions;
    if (next.failed()) {
      // The failing step is the path's last one.
      stack.push_back(Frame{std::move(next), {e}, 1, 0});
      fail_with_path(stack.back().world.violation(), nullptr);
      break;
    }
    buf.clear();
    next.AppendState(&buf);
    absl::uint128 h = Hash128(buf);
    if (on_stack.contains(h)) {
      fail_with_path(
          {"liveness", "livelock: a cycle of states makes no progress", ""},
          &e);
      break;
    }
    if (visited.contains(h)) continue;
    if (result.states >= max_states) {
      result.truncated = true;
      if (getenv("DSM_SIM_DEBUG_PATH") != nullptr) {
        fail_with_path({"debug", "state limit", ""}, &e);
        result.ok = true;
        std::fprintf(stderr, "%s", result.violation.trace.c_str());
      }
      break;
    }
    push(std::move(next));
  }
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
  if (name == "none") return absl::OkStatus();
  if (name == "skip-invalidation") {
    config->bug = TestBug::kSkipInvalidation;
  } else if (name == "skip-downgrade") {
    config->bug = TestBug::kSkipDowngrade;
  } else if (name == "early-unblock") {
    config->bug = TestBug::kEarlyUnblock;
  } else if (name == "driver-early-send") {
    config->driver_early_send = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--inject-bug: unknown bug '", name,
                     "' (skip-invalidation, skip-downgrade, early-unblock, "
                     "driver-early-send)"));
  }
  return absl::OkStatus();
}

}  // namespace ssihv::directory::sim
