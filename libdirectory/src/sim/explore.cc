// The exhaustive explorer: depth-first over every enabled event (and every
// choice of operation), with 128-bit state hashing. A state seen on the
// current path again is a livelock; a state with nothing enabled must have
// finished all work.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "sim/common.h"
#include "sim/world.h"
#include "ssihv/directory/sim.h"

namespace ssihv::directory::sim {
namespace {

using internal::Event;
using internal::World;

class Explorer {
 public:
  Explorer(const Config& config, const PageSpace& space, uint64_t max_states)
      : config_(config), space_(space), max_states_(max_states) {}

  ExploreResult Run() {
    Config quiet = config_;
    quiet.trace_lines = 0;
    World root(quiet, space_, internal::MakeNodes(quiet, space_), nullptr);
    absl::uint128 h = HashOf(root);
    Push(std::move(root), h);
    while (!stack_.empty() && result_.ok && !result_.truncated) Step();
    return result_;
  }

 private:
  struct Frame {
    World world;
    std::vector<Event> events;
    size_t next = 0;
    absl::uint128 hash;
  };

  absl::uint128 HashOf(const World& w) {
    buf_.clear();
    w.AppendState(&buf_);
    return internal::Hash128(buf_);
  }

  void Push(World w, absl::uint128 h) {
    Frame f{std::move(w), {}, 0, h};
    f.world.Enabled(/*timed=*/false, &f.events);
    visited_.insert(h);
    on_stack_.insert(h);
    ++result_.states;
    if (f.events.empty()) ++result_.terminal;
    stack_.push_back(std::move(f));
    result_.max_depth = std::max<uint32_t>(
        result_.max_depth, static_cast<uint32_t>(stack_.size()));
  }

  // Takes the next branch of the top frame, or pops it when done.
  void Step() {
    Frame& top = stack_.back();
    if (top.next == top.events.size()) {
      if (top.events.empty() && !top.world.Finished()) {
        Fail({"liveness",
              "stuck: work left but no event enabled:" +
                  top.world.DescribeStuck(),
              ""},
             nullptr);
        return;
      }
      on_stack_.erase(top.hash);
      stack_.pop_back();
      return;
    }
    const Event e = top.events[top.next++];
    World next = top.world;
    next.Apply(e);
    ++result_.transitions;
    if (next.failed()) {
      Fail(next.violation(), &e);
      return;
    }
    absl::uint128 h = HashOf(next);
    if (on_stack_.contains(h)) {
      Fail({"liveness", "livelock: a cycle of states makes no progress", ""},
           &e);
      return;
    }
    if (visited_.contains(h)) return;
    if (result_.states >= max_states_) {
      result_.truncated = true;
      // DSM_SIM_DEBUG_PATH=1 prints the path that hit the limit (a path
      // that keeps growing points at unbounded progress-free work).
      if (std::getenv("DSM_SIM_DEBUG_PATH") != nullptr) {
        std::fprintf(stderr, "%s", Replay(&e).c_str());
      }
      return;
    }
    Push(std::move(next), h);
  }

  // Re-runs the current path (plus `last`) with tracing on.
  std::string Replay(const Event* last) {
    Config traced = config_;
    traced.trace_lines = static_cast<uint32_t>(stack_.size() + 2);
    World replay(traced, space_, internal::MakeNodes(traced, space_), nullptr);
    for (size_t i = 0; i + 1 < stack_.size(); ++i) {
      replay.Apply(stack_[i].events[stack_[i].next - 1]);
    }
    const Frame& top = stack_.back();
    if (top.next > 0 && !replay.failed()) {
      replay.Apply(top.events[top.next - 1]);
    } else if (last != nullptr && !replay.failed()) {
      replay.Apply(*last);
    }
    return replay.FormatTrace(traced.trace_lines);
  }

  void Fail(Violation v, const Event* last) {
    v.trace = Replay(last);
    result_.ok = false;
    result_.violation = std::move(v);
  }

  const Config config_;
  const PageSpace space_;
  const uint64_t max_states_;
  ExploreResult result_;
  std::vector<Frame> stack_;
  absl::flat_hash_set<absl::uint128> visited_, on_stack_;
  std::string buf_;
};

}  // namespace

ExploreResult Explore(const Config& config, uint64_t max_states) {
  absl::StatusOr<PageSpace> space = internal::SpaceFor(config);
  if (!space.ok()) {
    ExploreResult r;
    r.ok = false;
    r.violation = {"config", space.status().ToString(), ""};
    return r;
  }
  return Explorer(config, *space, max_states).Run();
}

}  // namespace ssihv::directory::sim
