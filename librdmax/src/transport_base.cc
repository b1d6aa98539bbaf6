#include "transport_base.h"

#include "absl/strings/str_cat.h"
#include "auth.h"
#include "ssihv/base/log.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/thread_priority.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::rdmax {
namespace {

// The transport whose data thread the current thread is (nullptr if none).
thread_local const TransportBase* current_data_thread = nullptr;

}  // namespace

absl::Status ValidateOptions(const cluster::ClusterConfig& config, NodeId self,
                             const TransportOptions& o) {
  if (self >= config.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("node id ", self, " is not in the cluster config (",
                     config.num_nodes(), " nodes)"));
  }
  SSIHV_RETURN_IF_ERROR(ValidateSecret(o.secret));
  if (o.max_outstanding == 0 || o.max_outstanding > 0xFFFF) {
    return absl::InvalidArgumentError("max_outstanding: must be in 1..65535");
  }
  if (o.max_message_bytes < 64 || o.max_message_bytes > (64u << 20) ||
      o.max_fetch_bytes == 0 || o.max_fetch_bytes > (1u << 30)) {
    return absl::InvalidArgumentError(
        "max_message_bytes must be in 64..64 MiB and max_fetch_bytes in "
        "1..1 GiB");
  }
  if (o.rdma_recv_depth < 8 || o.rdma_recv_depth > 4096) {
    return absl::InvalidArgumentError("rdma_recv_depth: must be in 8..4096");
  }
  if (o.fetch_lanes > 256) {
    return absl::InvalidArgumentError("fetch_lanes: must be in 0..256");
  }
  if (o.service_nice < base::kMinNice || o.service_nice > base::kMaxNice) {
    return absl::InvalidArgumentError(
        absl::StrCat("service_nice: ", o.service_nice, " is outside ",
                     base::kMinNice, "..", base::kMaxNice));
  }
  if (o.send_queue_bytes < kFrameHeaderSize + o.max_message_bytes) {
    return absl::InvalidArgumentError(
        "send_queue_bytes: must hold at least one message of "
        "max_message_bytes");
  }
  return absl::OkStatus();
}

TransportStats AtomicStats::Snapshot() const {
  TransportStats s;
  s.messages_sent = messages_sent.load();
  s.messages_received = messages_received.load();
  s.fetches = fetches.load();
  s.fetch_bytes = fetch_bytes.load();
  s.fetches_served = fetches_served.load();
  s.fetches_refused = fetches_refused.load();
  s.bounce_copies = bounce_copies.load();
  s.send_queue_full = send_queue_full.load();
  s.connections_established = connections_established.load();
  s.connections_lost = connections_lost.load();
  s.auth_failures = auth_failures.load();
  s.malformed_frames = malformed_frames.load();
  s.send_queue_high_water = send_queue_high_water.load();
  s.lane_fetches = lane_fetches.load();
  s.lanes_dialed = lanes_dialed.load();
  s.lanes_accepted = lanes_accepted.load();
  s.lanes_refused = lanes_refused.load();
  s.lanes_open = lanes_open.load();
  s.lanes_serving = lanes_serving.load();
  s.lane_calls = lane_calls.load();
  s.lane_calls_served = lane_calls_served.load();
  return s;
}

void AtomicStats::NoteQueueDepth(uint64_t bytes) {
  uint64_t cur = send_queue_high_water.load(std::memory_order_relaxed);
  while (bytes > cur && !send_queue_high_water.compare_exchange_weak(
                            cur, bytes, std::memory_order_relaxed)) {
  }
}

absl::string_view BackendName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kLoopback:
      return "loopback";
    case BackendKind::kTcp:
      return "tcp";
    case BackendKind::kRdma:
      return "rdma";
  }
  return "?";
}

absl::Status Transport::WaitForAllPeers(absl::Time deadline) {
  // The number of nodes is not part of the interface; peers are probed
  // until one is not a cluster member (InvalidArgument).
  for (NodeId peer = 0;; ++peer) {
    if (peer == self()) continue;
    absl::Status st = WaitForPeer(peer, deadline);
    if (absl::IsInvalidArgument(st)) return absl::OkStatus();
    if (!st.ok()) return st;
  }
}

TransportBase::TransportBase(const cluster::ClusterConfig& config, NodeId self,
                             TransportOptions options)
    : Transport(self),
      config_(config),
      options_(std::move(options)),
      peer_counters_(std::make_unique<PeerCounters[]>(config.num_nodes())),
      connected_(config.num_nodes(), false) {
  limits_.max_message_bytes = options_.max_message_bytes;
  limits_.max_fetch_bytes = options_.max_fetch_bytes;
}

TransportBase::PeerCounters* TransportBase::PeerOf(NodeId peer) const {
  return peer < config_.num_nodes() && peer != self() ? &peer_counters_[peer]
                                                      : nullptr;
}

std::vector<PeerTransportStats> TransportBase::peer_stats() const {
  std::vector<PeerTransportStats> out(config_.num_nodes());
  for (NodeId n = 0; n < out.size(); ++n) {
    const PeerCounters& c = peer_counters_[n];
    out[n].messages_sent = c.messages_sent.load(std::memory_order_relaxed);
    out[n].messages_received =
        c.messages_received.load(std::memory_order_relaxed);
    out[n].bytes_sent = c.bytes_sent.load(std::memory_order_relaxed);
    out[n].bytes_received = c.bytes_received.load(std::memory_order_relaxed);
    out[n].errors = c.errors.load(std::memory_order_relaxed);
  }
  return out;
}

void TransportBase::CountSent(NodeId to, uint64_t payload_bytes) {
  Bump(stats_.messages_sent);
  if (PeerCounters* c = PeerOf(to)) {
    Bump(c->messages_sent);
    Bump(c->bytes_sent, payload_bytes);
  }
}

void TransportBase::CountPeerError(NodeId peer) {
  if (PeerCounters* c = PeerOf(peer)) Bump(c->errors);
}

void TransportBase::CountFetched(NodeId from, uint64_t bytes) {
  Bump(stats_.fetches);
  Bump(stats_.fetch_bytes, bytes);
  if (PeerCounters* c = PeerOf(from)) Bump(c->bytes_received, bytes);
}

void TransportBase::CountReplyBytes(NodeId peer, uint64_t bytes, bool sent) {
  if (PeerCounters* c = PeerOf(peer)) {
    Bump(sent ? c->bytes_sent : c->bytes_received, bytes);
  }
}

void TransportBase::CountServed(NodeId to, uint64_t bytes) {
  Bump(stats_.fetches_served);
  if (PeerCounters* c = PeerOf(to)) Bump(c->bytes_sent, bytes);
}

absl::StatusOr<absl::Span<const uint8_t>> TransportBase::ServeLaneCall(
    NodeId peer, const FrameHeader& request, absl::Span<const uint8_t> payload,
    FrameHeader* response, std::vector<uint8_t>* error) {
  *response = FrameHeader{};
  response->kind = FrameKind::kResponse;
  response->type = request.type;
  response->id = request.id;
  if (!lane_handler_) {
    *error = EncodeError(absl::UnimplementedError(absl::StrCat(
        "node ", self(), " serves no lane calls (no lane handler)")));
    response->flags = kFlagError;
    response->length = static_cast<uint32_t>(error->size());
    return absl::MakeConstSpan(*error);
  }
  Message m;
  m.from = peer;
  m.type = request.type;
  m.request_id = request.id;
  m.payload = payload;
  Bump(stats_.lane_calls_served);
  CountReplyBytes(peer, payload.size(), /*sent=*/false);
  absl::Span<const uint8_t> answer = lane_handler_(m);
  if (answer.size() > options_.max_message_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the lane handler answered with ", answer.size(),
                     " bytes, more than max_message_bytes"));
  }
  response->length = static_cast<uint32_t>(answer.size());
  CountReplyBytes(peer, answer.size(), /*sent=*/true);
  return answer;
}

absl::StatusOr<size_t> TransportBase::CallOnLane(
    NodeId to, MessageType type, absl::Span<const uint8_t> payload,
    absl::Span<uint8_t> response) {
  (void)type;
  (void)payload;
  (void)response;
  SSIHV_RETURN_IF_ERROR(CheckPeer(to, "CallOnLane"));
  return absl::ResourceExhaustedError(
      absl::StrCat("CallOnLane node=", to, ": the ", BackendName(kind()),
                   " backend has no lane calls"));
}

absl::Status TransportBase::CheckPeer(NodeId peer, absl::string_view op) const {
  if (peer >= config_.num_nodes() || peer == self()) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, " node=", peer, ": not a peer of node ", self(),
                     " (cluster of ", config_.num_nodes(), ")"));
  }
  return absl::OkStatus();
}

absl::Status TransportBase::CheckMayBlock(absl::string_view op) const {
  if (current_data_thread == this) {
    return absl::FailedPreconditionError(
        absl::StrCat(op,
                     ": would block the transport's data thread (called from a "
                     "callback; use the async form)"));
  }
  return absl::OkStatus();
}

void TransportBase::EnterDataThread() const {
  current_data_thread = this;
  base::ApplyServiceNice(options_.service_nice);
}
bool TransportBase::OnDataThread() const { return current_data_thread == this; }

bool TransportBase::IsConnected(NodeId peer) const {
  std::lock_guard<std::mutex> lock(peers_mu_);
  return peer < connected_.size() && connected_[peer];
}

absl::Status TransportBase::WaitForPeer(NodeId peer, absl::Time deadline) {
  if (absl::Status st = CheckPeer(peer, "WaitForPeer"); !st.ok()) return st;
  std::unique_lock<std::mutex> lock(peers_mu_);
  while (!connected_[peer]) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "node ", self(), ": node ", peer, " not connected in time"));
    }
    peers_cv_.wait_for(lock, absl::ToChronoNanoseconds(left));
  }
  return absl::OkStatus();
}

void TransportBase::NotePeerState(NodeId peer, PeerState state) {
  {
    std::lock_guard<std::mutex> lock(peers_mu_);
    connected_[peer] = state == PeerState::kUp;
  }
  // Every backend reports a lost connection here, once per connection.
  if (state == PeerState::kDown) CountPeerError(peer);
  peers_cv_.notify_all();
  base::Log(base::LogLevel::kInfo, "rdmax node ", self(), ": node ", peer,
            state == PeerState::kUp ? " up" : " down");
  if (peer_handler_) peer_handler_(peer, state);
}

void TransportBase::Deliver(const Message& message) {
  Bump(stats_.messages_received);
  if (PeerCounters* c = PeerOf(message.from)) {
    Bump(c->messages_received);
    Bump(c->bytes_received, message.payload.size());
  }
  if (message_handler_) {
    message_handler_(message);
    return;
  }
  if (message.request_id != 0) {
    ReplyError(ReplyToken::For(message),
               absl::UnimplementedError(
                   absl::StrCat("node ", self(), " has no message handler")))
        .IgnoreError();
  } else {
    base::Log(base::LogLevel::kWarning, "rdmax node ", self(),
              ": no message handler; dropped message type ", message.type,
              " from node ", message.from);
  }
}

}  // namespace ssihv::rdmax
