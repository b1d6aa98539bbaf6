// The TCP transport's fetch lanes (docs/TRANSPORT.md, "Fetch lanes"): dialing
// and using them (fetching side), accepting and closing them (serving side).
#include <sys/epoll.h>

#include "absl/strings/str_cat.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "sys/posix.h"
#include "tcp/tcp_transport.h"

namespace ssihv::rdmax {
namespace {

using base::Log;
using base::LogLevel;

// A lane's receive wakes this often to check the fetch's deadline.
constexpr absl::Duration kLaneReceiveTimeout = absl::Milliseconds(100);

}  // namespace

absl::Status TcpTransport::CheckFetch(TcpConnection& conn, RegionId region,
                                      uint64_t offset,
                                      absl::Span<uint8_t> dst) {
  if (dst.empty() || dst.size() > options_.max_fetch_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("Fetch node=", conn.peer(), ": length ", dst.size(),
                     " not in 1..", options_.max_fetch_bytes));
  }
  absl::StatusOr<RegionEntry> entry =
      conn.peer_regions().Check(conn.peer(), region, offset, dst.size());
  if (!entry.ok()) {
    Bump(stats_.fetches_refused);
    return entry.status();
  }
  return absl::OkStatus();
}

std::optional<absl::Status> TcpTransport::FetchOverLane(
    const std::shared_ptr<TcpConnection>& conn, RegionId region,
    uint64_t offset, absl::Span<uint8_t> dst, absl::Time deadline) {
  bool setup = false;
  std::shared_ptr<FetchLane> lane = conn->lanes().Acquire(&setup);
  if (setup) RequestLane(conn);
  if (lane == nullptr) return std::nullopt;
  absl::Status result;
  FetchLane::Outcome outcome =
      lane->Fetch(region, offset, dst, deadline, &result);
  conn->lanes().Release(std::move(lane), outcome == FetchLane::Outcome::kDone);
  if (outcome == FetchLane::Outcome::kBroken) return std::nullopt;
  if (result.ok()) {
    CountFetched(conn->peer(), dst.size());
    Bump(stats_.lane_fetches);
  }
  return result;
}

absl::StatusOr<size_t> TcpTransport::CallOnLane(
    NodeId to, MessageType type, absl::Span<const uint8_t> payload,
    absl::Span<uint8_t> response) {
  SSIHV_RETURN_IF_ERROR(CheckMayBlock("CallOnLane"));
  SSIHV_ASSIGN_OR_RETURN(auto conn, Connection(to, "CallOnLane"));
  if (payload.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CallOnLane node=", to, ": payload of ", payload.size(),
        " bytes exceeds max_message_bytes ", options_.max_message_bytes));
  }
  bool setup = false;
  std::shared_ptr<FetchLane> lane =
      options_.fetch_lanes > 0 ? conn->lanes().Acquire(&setup) : nullptr;
  if (setup) RequestLane(conn);
  if (lane == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("CallOnLane node=", to, ": no lane idle"));
  }
  absl::Status result;
  size_t length = 0;
  FetchLane::Outcome outcome =
      lane->Call(type, payload, response, absl::Now() + options_.op_timeout,
                 &length, &result);
  const std::string why =
      outcome == FetchLane::Outcome::kDone ? "" : lane->broken_why();
  conn->lanes().Release(std::move(lane), outcome == FetchLane::Outcome::kDone);
  switch (outcome) {
    case FetchLane::Outcome::kDone:
      if (!result.ok()) return result;
      Bump(stats_.lane_calls);
      CountSent(to, payload.size());
      CountReplyBytes(to, length, /*sent=*/false);
      return length;
    case FetchLane::Outcome::kNotSent:
      return absl::ResourceExhaustedError(absl::StrCat(
          "CallOnLane node=", to, ": the lane failed before the request left (",
          why, ")"));
    case FetchLane::Outcome::kTimedOut:
      return result;
    case FetchLane::Outcome::kBroken:
      break;
  }
  if (absl::IsOutOfRange(result)) return result;
  return absl::UnavailableError(
      absl::StrCat("CallOnLane node=", to,
                   ": the lane failed after the request left (", why, ")"));
}

void TcpTransport::RequestLane(const std::shared_ptr<TcpConnection>& conn) {
  std::weak_ptr<TcpConnection> weak = conn;
  const NodeId peer = conn->peer();
  control_->DialLane(peer, [this, weak, peer](absl::StatusOr<int> fd) {
    std::shared_ptr<TcpConnection> c = weak.lock();
    if (!fd.ok()) {
      if (c != nullptr) c->lanes().SetupFailed();
      Log(LogLevel::kDebug, "rdmax node ", self(), ": ", fd.status().message());
      return;
    }
    base::UniqueFd owned(*fd);
    if (c == nullptr) return;  // the connection is gone: drop the lane
    absl::Status st = sys::SetBlocking(owned.get());
    if (st.ok()) st = sys::SetTcpNoDelay(owned.get());
    if (st.ok()) st = sys::SetKeepAlive(owned.get(), kSocketKeepAlive);
    if (st.ok()) st = sys::SetReceiveTimeout(owned.get(), kLaneReceiveTimeout);
    if (!st.ok()) {
      Log(LogLevel::kWarning, "rdmax node ", self(), ": fetch lane to node ",
          peer, ": ", st.message());
      c->lanes().SetupFailed();
      return;
    }
    auto lane =
        std::make_shared<FetchLane>(std::move(owned), peer, limits_, &stats_);
    c->lanes().Adopt(std::move(lane));
  });
}

void TcpTransport::AdoptLane(NodeId peer, base::UniqueFd fd) {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (stopped_) return;
  }
  uint64_t conn_token = 0;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    const std::shared_ptr<TcpConnection>& c = current_[peer];
    if (c != nullptr && c->up() && !c->dead()) conn_token = c->token();
  }
  std::lock_guard<std::mutex> lock(served_mu_);
  std::erase_if(served_, [](const auto& s) { return s.second->finished(); });
  size_t count = 0;
  for (const auto& s : served_) count += s.second->peer() == peer;
  absl::Status st;
  if (conn_token == 0) {
    st = absl::FailedPreconditionError("its main connection is not up");
  } else if (count >= options_.fetch_lanes) {
    st = absl::ResourceExhaustedError(absl::StrCat(
        "it has ", count,
        " lanes already (fetch_lanes = ", options_.fetch_lanes, ")"));
  }
  if (st.ok()) st = sys::SetBlocking(fd.get());
  if (st.ok()) st = sys::SetTcpNoDelay(fd.get());
  if (st.ok()) st = sys::SetKeepAlive(fd.get(), kSocketKeepAlive);
  // A peer that stops reading its responses loses the lane after this.
  if (st.ok()) st = sys::SetSendTimeout(fd.get(), options_.op_timeout);
  if (!st.ok()) {
    Bump(stats_.lanes_refused);
    Log(LogLevel::kWarning, "rdmax node ", self(),
        ": refused a fetch lane from node ", peer, ": ", st.message());
    return;
  }
  auto lane = std::make_unique<ServedLane>(this, peer, std::move(fd));
  lane->Start();
  served_.emplace_back(conn_token, std::move(lane));
  Bump(stats_.lanes_accepted);
}

void TcpTransport::StopServedLanes(const TcpConnection& conn) {
  std::lock_guard<std::mutex> lock(served_mu_);
  for (auto& [token, lane] : served_) {
    if (token == conn.token()) lane->Stop();
  }
}

void TcpTransport::JoinServedLanes() {
  std::vector<std::pair<uint64_t, std::unique_ptr<ServedLane>>> lanes;
  {
    std::lock_guard<std::mutex> lock(served_mu_);
    lanes.swap(served_);
  }
  for (auto& s : lanes) s.second->Stop();
  lanes.clear();  // joins
}

}  // namespace ssihv::rdmax
