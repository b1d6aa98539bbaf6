#include "sim/common.h"

#include <cstring>

namespace ssihv::directory::sim::internal {

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

// Two multiply-mix lanes.
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

}  // namespace ssihv::directory::sim::internal
