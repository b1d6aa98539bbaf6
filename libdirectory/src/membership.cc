#include "ssihv/directory/membership.h"

#include <cassert>

namespace ssihv::directory {

Membership::Membership(const PageSpace& space, NodeId self)
    : space_(space), self_(self) {
  uint32_t n = space.num_nodes();
  all_ = n == 64 ? ~NodeMask{0} : (NodeMask{1} << n) - 1;
  for (uint32_t i = 0; i < n; ++i) home_[i] = static_cast<uint8_t>(i);
}

NodeMask Membership::MarkDead(NodeId n) {
  assert(n != self_ && !IsDead(n));
  dead_ |= Bit(n);
  NodeMask changed = 0;
  uint32_t count = num_nodes();
  for (uint32_t r = 0; r < count; ++r) {
    if (home_[r] != n) continue;
    // The next live node after the dead home, cyclically; self is alive so
    // the search ends.
    NodeId h = n;
    do {
      h = (h + 1) % count;
    } while (IsDead(h));
    home_[r] = static_cast<uint8_t>(h);
    changed |= Bit(r);
  }
  return changed;
}

void Env::Send(NodeId to, const Message& msg) {
  if (members.IsDead(to)) return;
  Effect e;
  e.type = EffectType::kSend;
  e.node = to;
  e.page = msg.page;
  e.msg = msg;
  out.effects.push_back(e);
}

}  // namespace ssihv::directory
