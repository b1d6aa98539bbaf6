// Which nodes are alive and which node is the effective home of each page.
#ifndef SSIHV_DIRECTORY_MEMBERSHIP_H_
#define SSIHV_DIRECTORY_MEMBERSHIP_H_

#include <array>

#include "ssihv/directory/output.h"
#include "ssihv/directory/page_space.h"
#include "ssihv/directory/stats.h"
#include "ssihv/directory/types.h"

namespace ssihv::directory {

/// The static home of a page is the node whose memory holds it. While that
/// node lives it is the page's home; after it dies, the home is the next
/// live node in cyclic id order (static_home+1, +2, ... mod N), so every
/// node that knows the same set of dead nodes agrees on every home.
class Membership {
 public:
  Membership(const PageSpace& space, NodeId self);

  NodeId self() const { return self_; }
  const PageSpace& space() const { return space_; }
  uint32_t num_nodes() const { return space_.num_nodes(); }
  NodeMask all() const { return all_; }
  NodeMask dead() const { return dead_; }
  NodeMask live() const { return all_ & ~dead_; }
  bool IsDead(NodeId n) const { return (dead_ & Bit(n)) != 0; }

  /// The effective home of the pages of `static_home`'s range.
  NodeId HomeOfRange(NodeId static_home) const { return home_[static_home]; }
  NodeId HomeOf(PageId page) const { return home_[space_.StaticHomeOf(page)]; }

  /// Marks `n` dead (it must be alive and not self). Returns the static
  /// ranges whose effective home changed (those that were homed at `n`).
  NodeMask MarkDead(NodeId n);

 private:
  PageSpace space_;
  NodeId self_;
  NodeMask all_;
  NodeMask dead_ = 0;
  std::array<uint8_t, kMaxNodes> home_{};
};

/// What every agent call gets: the membership view (read-only), the
/// counters and the output to append effects to.
struct Env {
  const Membership& members;
  Stats& stats;
  Output& out;

  NodeId self() const { return members.self(); }
  /// Appends a kSend (messages to dead nodes are dropped here).
  void Send(NodeId to, const Message& msg);
};

/// Deliberate protocol bugs, only for showing that the simulator catches
/// them (dsm-sim --inject-bug, the simulator tests). Never set in production.
enum class TestBug : uint8_t {
  kNone = 0,
  kSkipInvalidation,  // the home skips the kInv to the highest sharer
  kSkipDowngrade,     // a Modified holder serving kFwdRead stays writable
  kEarlyUnblock,      // the home ends a transaction without waiting for kDone
  kRunSkipDowngrade,  // a Modified home granting a run stays writable
  kWriteRunNotPristine,   // a home grants a write run of pages it wrote
  kDowngradeSkipProtect,  // a background downgrade leaves the page writable
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_MEMBERSHIP_H_
