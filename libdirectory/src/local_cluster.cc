#include "ssihv/directory/local_cluster.h"

#include "absl/strings/str_cat.h"

namespace ssihv::directory {

absl::StatusOr<LocalCluster> LocalCluster::Create(
    const std::vector<uint64_t>& pages_per_node, Node::Options options) {
  absl::StatusOr<PageSpace> space = PageSpace::FromPageCounts(pages_per_node);
  if (!space.ok()) return space.status();
  std::vector<Node> nodes;
  for (NodeId n = 0; n < space->num_nodes(); ++n) {
    absl::StatusOr<Node> node = Node::Create(*space, n, options);
    if (!node.ok()) return node.status();
    nodes.push_back(*std::move(node));
  }
  return LocalCluster(std::move(nodes));
}

LocalCluster::LocalCluster(std::vector<Node> nodes)
    : nodes_(std::move(nodes)),
      dead_(nodes_.size(), false),
      channels_(nodes_.size() * nodes_.size()),
      log_(nodes_.size()) {}

void LocalCluster::ClearLog() {
  for (auto& l : log_) l.clear();
}

absl::Status LocalCluster::Perform(NodeId n) {
  uint32_t count = num_nodes();
  for (const Effect& e : out_.effects) {
    log_[n].push_back(e);
    switch (e.type) {
      case EffectType::kSend:
        ++messages_;
        channels_[n * count + e.node].push_back({n, false, e.msg, {}});
        break;
      case EffectType::kSendReport:
        ++messages_;
        channels_[n * count + e.node].push_back(
            {n, true, {}, out_.reports[e.index]});
        break;
      case EffectType::kFetch:
        fetch_queue_.push_back({n, e.node, {}, e.page});
        break;
      case EffectType::kDefer:
        deferred_.push_back({n, e.node, e.msg, e.page});
        break;
      default:
        break;
    }
  }
  out_.Clear();
  return absl::OkStatus();
}

absl::Status LocalCluster::Fault(NodeId n, PageId page, enum Access access) {
  out_.Clear();
  absl::Status s = nodes_[n].OnFault(page, access, &out_);
  if (!s.ok()) return s;
  return Perform(n);
}

absl::StatusOr<uint32_t> LocalCluster::RequestRun(NodeId n, PageId first,
                                                  uint32_t max_pages) {
  out_.Clear();
  uint32_t requested = 0;
  absl::Status s = nodes_[n].RequestRun(first, max_pages, &out_, &requested);
  if (!s.ok()) return s;
  if (absl::Status p = Perform(n); !p.ok()) return p;
  return requested;
}

absl::Status LocalCluster::Run(uint64_t max_steps) {
  uint32_t count = num_nodes();
  for (uint64_t step = 0; step < max_steps; ++step) {
    bool progress = false;
    for (size_t c = 0; c < channels_.size(); ++c) {
      if (channels_[c].empty()) continue;
      Queued q = std::move(channels_[c].front());
      channels_[c].pop_front();
      progress = true;
      auto to = static_cast<NodeId>(c % count);
      if (dead_[to]) continue;
      out_.Clear();
      absl::Status s = q.report ? nodes_[to].OnReport(q.from, q.chunk, &out_)
                                : nodes_[to].OnMessage(q.from, q.msg, &out_);
      if (!s.ok()) return s;
      if (absl::Status p = Perform(to); !p.ok()) return p;
    }
    if (!fetch_queue_.empty()) {
      Pending f = fetch_queue_.front();
      fetch_queue_.erase(fetch_queue_.begin());
      progress = true;
      if (!dead_[f.node]) {
        ++fetches_done_;
        out_.Clear();
        absl::Status s =
            nodes_[f.node].OnFetchDone(f.page, !dead_[f.from], &out_);
        if (!s.ok()) return s;
        if (absl::Status p = Perform(f.node); !p.ok()) return p;
      }
    }
    if (!progress && !deferred_.empty()) {
      // Faults are not replayed here, so the hold has done its job once
      // everything else is quiet.
      Pending d = deferred_.front();
      deferred_.erase(deferred_.begin());
      progress = true;
      if (!dead_[d.node]) {
        out_.Clear();
        absl::Status s = nodes_[d.node].Resubmit(d.from, d.msg, &out_);
        if (!s.ok()) return s;
        if (absl::Status p = Perform(d.node); !p.ok()) return p;
      }
    }
    if (!progress) return absl::OkStatus();
  }
  return absl::DeadlineExceededError(
      "LocalCluster: still busy after max_steps");
}

absl::StatusOr<bool> LocalCluster::Access(NodeId n, PageId page,
                                          enum Access access) {
  size_t start = log_[n].size();
  if (absl::Status s = Fault(n, page, access); !s.ok()) return s;
  if (absl::Status s = Run(); !s.ok()) return s;
  for (size_t i = start; i < log_[n].size(); ++i) {
    const Effect& e = log_[n][i];
    if (e.page != page) continue;
    switch (e.type) {
      case EffectType::kMapLocal:
      case EffectType::kMapReceived:
      case EffectType::kMapFetched:
      case EffectType::kMakeWritable:
        return true;
      default:
        break;
    }
  }
  return false;
}

absl::Status LocalCluster::Kill(NodeId n) {
  if (n >= num_nodes() || dead_[n]) {
    return absl::InvalidArgumentError(absl::StrCat("LocalCluster: kill ", n));
  }
  dead_[n] = true;
  uint32_t count = num_nodes();
  for (NodeId to = 0; to < count; ++to) channels_[n * count + to].clear();
  for (NodeId x = 0; x < count; ++x) {
    if (dead_[x]) continue;
    out_.Clear();
    if (absl::Status s = nodes_[x].OnNodeDead(n, &out_); !s.ok()) return s;
    if (absl::Status p = Perform(x); !p.ok()) return p;
  }
  return absl::OkStatus();
}

}  // namespace ssihv::directory
