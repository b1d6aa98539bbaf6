// Which channel a packet takes (the pair's, or one of its lanes) and when
// the head of a pair's channel may be taken (docs/PROTOCOL.md, "Channels"
// and "Answers on lanes").
#include <algorithm>

#include "sim/world.h"

namespace ssihv::directory::sim::internal {

uint32_t World::Route(NodeId n, Packet* pk) {
  const uint32_t pair = n * N() + pk->to;
  const bool lanes_open =
      Lanes() && !pk->report && nodes_[n].membership().dead() == 0;
  const bool answer = lanes_open && config_.answer_lanes &&
                      IsAnswer(pk->msg.type) &&
                      space_.StaticHomeOf(pk->msg.page) == n;
  const bool request =
      lanes_open && config_.request_lanes && IsRequest(pk->msg.type);
  if (!answer && !request) {
    pk->after = answers_sent_[pair];
    return pair;
  }
  if (answer) pk->lane_seq = ++answers_sent_[pair];
  // Which of the pair's lanes: a driver takes whichever is idle. Random
  // mode draws it; the explorer alternates (not a branch of its own).
  const uint32_t lane = rng_ != nullptr
                            ? static_cast<uint32_t>(rng_->Below(kLanes))
                            : static_cast<uint32_t>(pk->id % kLanes);
  return (1 + lane) * N() * N() + pair;
}

bool World::Waits(const Packet& pk) const {
  if (pk.after == 0 || config_.driver_answers_unordered) return false;
  const uint32_t pair = pk.from * N() + pk.to;
  return pk.after > answers_taken_[pair] && !dead_[pk.to] &&
         !nodes_[pk.to].membership().IsDead(pk.from);
}

void World::TakeAnswer(uint32_t pair, uint64_t seq) {
  std::vector<uint64_t>& ahead = answers_ahead_[pair];
  if (seq != answers_taken_[pair] + 1) {
    ahead.insert(std::upper_bound(ahead.begin(), ahead.end(), seq), seq);
    return;
  }
  uint64_t taken = seq;
  size_t i = 0;
  while (i < ahead.size() && ahead[i] == taken + 1) taken = ahead[i++];
  ahead.erase(ahead.begin(), ahead.begin() + static_cast<ptrdiff_t>(i));
  answers_taken_[pair] = taken;
}

}  // namespace ssihv::directory::sim::internal
