// DsmEngine's read-only views for the control API (/pages, /metrics) and its
// statistics (StatsJson): the
// protocol state is read under the same page locks the fault and data
// threads take, so a view is never torn; the locks are held only to copy.
#include <algorithm>
#include <bit>

#include "absl/strings/str_cat.h"
#include "dsm/engine.h"

namespace ssihv::pager {
namespace dir = ::ssihv::directory;

namespace {

const char* DirStateName(dir::DirState s) {
  switch (s) {
    case dir::DirState::kShared:
      return "shared";
    case dir::DirState::kModified:
      return "modified";
    case dir::DirState::kLost:
      return "lost";
    case dir::DirState::kRecovering:
      return "recovering";
  }
  return "unknown";
}

DsmDirectoryView ViewOf(const dir::DirView& v) {
  DsmDirectoryView d;
  d.state = DirStateName(v.state);
  d.busy = v.phase != dir::TxnPhase::kIdle;
  std::vector<uint32_t> copies;
  for (dir::NodeMask m = v.copies; m != 0; m &= m - 1) {
    copies.push_back(static_cast<uint32_t>(std::countr_zero(m)));
  }
  if (v.state == dir::DirState::kModified && copies.size() == 1) {
    d.owner = copies.front();
  } else if (v.state == dir::DirState::kShared) {
    d.sharers = std::move(copies);
  }
  return d;
}

}  // namespace

absl::StatusOr<DsmPageView> DsmEngine::InspectPage(uint64_t gpa) const {
  std::optional<dir::PageId> page = space_->PageOfGpa(gpa);
  if (!page) {
    return absl::NotFoundError(absl::StrCat(
        "inspect page: GPA 0x", absl::Hex(gpa), " is not guest RAM"));
  }
  DsmPageView view;
  dsm::PageGuard guard(*locks_, *page);
  const auto local = static_cast<size_t>(node_->node_agent().StateOf(*page));
  view.state =
      local < kDsmPageStateNames.size() ? kDsmPageStateNames[local] : "unknown";
  const dir::NodeId range = space_->StaticHomeOf(*page);
  if (node_->home_agent().HoldsRange(range)) {
    view.directory = ViewOf(node_->home_agent().Inspect(*page));
  }
  return view;
}

std::vector<DsmRequestsServed> DsmEngine::RequestsServed() const {
  std::vector<DsmRequestsServed> out(config_.num_nodes());
  for (size_t n = 0; n < out.size(); ++n) {
    out[n].reads = served_[2 * n].load(std::memory_order_relaxed);
    out[n].writes = served_[2 * n + 1].load(std::memory_order_relaxed);
  }
  return out;
}

std::vector<DsmPageTraffic> DsmEngine::HottestPages(size_t n) const {
  auto hotter = [](const DsmPageTraffic& a, const DsmPageTraffic& b) {
    return a.reads + a.writes > b.reads + b.writes;
  };
  // A min-heap of the n hottest so far (its front the coolest of them).
  std::vector<DsmPageTraffic> top;
  if (n == 0) return top;
  const dir::PageId pages = space_->num_pages();
  for (uint64_t stripe = 0; stripe < dsm::PageLocks::kStripes; ++stripe) {
    if (stripe >= pages) break;
    dsm::PageGuard guard(*locks_, stripe);
    for (dir::PageId p = stripe; p < pages; p += dsm::PageLocks::kStripes) {
      const dir::PageStats* s = node_->home_agent().PageStatsOf(p);
      if (s == nullptr || s->reads + s->writes == 0) continue;
      DsmPageTraffic t{GpaOf(p), s->reads, s->writes, s->invalidations,
                       s->transfers};
      if (top.size() < n) {
        top.push_back(t);
        std::push_heap(top.begin(), top.end(), hotter);
      } else if (hotter(t, top.front())) {
        std::pop_heap(top.begin(), top.end(), hotter);
        top.back() = t;
        std::push_heap(top.begin(), top.end(), hotter);
      }
    }
  }
  std::sort_heap(top.begin(), top.end(), hotter);
  return top;
}

std::array<uint64_t, 4> DsmEngine::PagesByState() const {
  std::array<uint64_t, 4> counts{};
  const dir::PageId pages = space_->num_pages();
  for (uint64_t stripe = 0; stripe < dsm::PageLocks::kStripes; ++stripe) {
    if (stripe >= pages) break;
    // Every page of one stripe under its lock (one acquisition each).
    dsm::PageGuard guard(*locks_, stripe);
    for (dir::PageId p = stripe; p < pages; p += dsm::PageLocks::kStripes) {
      const auto s = static_cast<size_t>(node_->node_agent().StateOf(p));
      if (s < counts.size()) ++counts[s];
    }
  }
  return counts;
}

// ---- stats ----------------------------------------------------------------

// The pages homed here with the most transactions, in the statistics.
constexpr size_t kStatsHottestPages = 10;

nlohmann::json DsmEngine::StatsJson() const {
  const rdmax::TransportStats t = transport_->stats();
  nlohmann::json transport = {
      {"backend", std::string(rdmax::BackendName(transport_->kind()))},
      {"messages_sent", t.messages_sent},
      {"messages_received", t.messages_received},
      {"send_queue_full", t.send_queue_full},
      {"send_queue_high_water", t.send_queue_high_water},
      {"connections_lost", t.connections_lost},
      {"malformed_frames", t.malformed_frames}};
  nlohmann::json served = nlohmann::json::array();
  const std::vector<DsmRequestsServed> by_peer = RequestsServed();
  for (uint32_t n = 0; n < by_peer.size(); ++n) {
    if (n == self_) continue;
    served.push_back({{"node", n},
                      {"reads", by_peer[n].reads},
                      {"writes", by_peer[n].writes}});
  }
  nlohmann::json hottest = nlohmann::json::array();
  for (const DsmPageTraffic& p : HottestPages(kStatsHottestPages)) {
    hottest.push_back({{"gpa", absl::StrCat("0x", absl::Hex(p.gpa))},
                       {"reads", p.reads},
                       {"writes", p.writes},
                       {"invalidations", p.invalidations},
                       {"transfers", p.transfers}});
  }
  const dsm::ReadRefresh::Stats refresh = refresh_->stats();
  nlohmann::json dsm = {
      {"node", self_},
      {"requests_served", std::move(served)},
      {"hottest_pages", std::move(hottest)},
      {"frames_received", frames_received_.load()},
      {"zaps", zaps_.load()},
      {"zero_page_sends", zero_page_sends_.load()},
      {"reinstalls", reinstalls_.load()},
      {"read_ahead_requests", ahead_requests_.load()},
      {"run_pages_max", run_pages_},
      {"run_copies", run_copies_.load()},
      {"run_pages_one_by_one", run_pages_one_by_one_.load()},
      {"read_ahead_markers_held", held_->size()},
      {"read_ahead_markers_reached", held_served_.load()},
      {"read_ahead_markers_invalidated", held_dropped_.load()},
      {"read_ahead_markers_flushed", held_flushed_.load()},
      {"read_refresh_requests", refresh.requested},
      {"read_refresh_used", refresh.used},
      {"read_refresh_wasted", refresh.wasted},
      {"read_refresh_cooled", refresh.cooled},
      {"read_refresh_pages_hot", refresh.hot},
      {"hold_escalations", hold_->escalations()},
      {"background_downgrades", downgrade_->downgrades()},
      {"background_downgrades_useful", downgrade_->useful()},
      {"background_downgrades_wasted", downgrade_->wasted()},
      {"hold_interrupted_writes", hold_->interrupted_writes()},
      {"deferred", deferred_count_.load()},
      {"lane_calls", lane_calls_.load()},
      {"lane_answers_taken", lane_answers_taken_.load()},
      {"lane_fallbacks", lane_fallbacks_.load()},
      {"lane_failures", lane_failures_.load()},
      {"lane_requests_served", lane_requests_served_.load()},
      {"lane_answers_sent", LaneAnswersSent()},
      {"frames_parked", FramesParked()},
      {"backlogged_sends", outbox_->backlogged()},
      {"failed", failed_.load()}};
  return {{"pager", ToJson(pager_->Stats())},
          {"protocol", nlohmann::json::parse(node_->Stats().ToJson())},
          {"transport", transport},
          {"dsm", dsm}};
}

}  // namespace ssihv::pager
