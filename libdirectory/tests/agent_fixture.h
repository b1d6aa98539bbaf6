// Helpers for driving one agent directly: an Env over a membership view,
// counters and an output, plus effect matchers.
#ifndef SSIHV_DIRECTORY_TESTS_AGENT_FIXTURE_H_
#define SSIHV_DIRECTORY_TESTS_AGENT_FIXTURE_H_

#include <string>
#include <vector>

#include "ssihv/directory/membership.h"
#include "ssihv/directory/message.h"
#include "ssihv/directory/output.h"
#include "ssihv/directory/page_space.h"
#include "ssihv/directory/stats.h"

namespace ssihv::directory::testing {

inline PageSpace Space(std::vector<uint64_t> counts) {
  return *PageSpace::FromPageCounts(counts);
}

/// The environment of the agents of node `self`.
struct Fixture {
  Fixture(const PageSpace& space, NodeId self) : members(space, self) {}
  Env env() { return Env{members, stats, out}; }
  /// Effects rendered one per line (Effect::ToString), then cleared.
  std::vector<std::string> Take() {
    std::vector<std::string> s;
    for (const Effect& e : out.effects) s.push_back(e.ToString());
    out.Clear();
    return s;
  }

  Membership members;
  Stats stats;
  Output out;
};

}  // namespace ssihv::directory::testing

#endif  // SSIHV_DIRECTORY_TESTS_AGENT_FIXTURE_H_
