// Answer lanes (docs/PAGER.md, "Answer lanes"; the rule is docs/PROTOCOL.md,
// "Answers on lanes", checked by dsm-sim --answer-lanes).
//
// A fault's request to its page's home leaves as a lane call once the
// fault thread has released the page lock; the home's lane thread serves
// it under the page lock like the data thread would, and when that call
// produces the answer (kData, kGrant, kDataRun) it goes back on the lane
// with its number among the answers the home put on lanes to that node.
// The fault thread maps it, then handles any main-connection frames that
// were waiting for it. When the home cannot answer at once (it forwards,
// defers, or recovers) the reply is empty and the answer comes the usual
// way. All of it only while the node knows of no death.
//
// Every DSM frame carries an 8-byte stamp ahead of the protocol's frame:
// a lane answer its number; a main-connection frame how many answers its
// sender had put on lanes to the receiver when the frame was staged (under
// the page lock, as the simulator's atomic step has it); zero on a lane
// request.
#include "absl/strings/str_cat.h"
#include "clock.h"
#include "dsm/engine.h"
#include "ssihv/base/log.h"
#include "ssihv/directory/message.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::pager {

namespace dir = ssihv::directory;

// The stamp is one little-endian u64 (rdmax::PutU64 / GetU64).
static_assert(DsmEngine::kStampBytes == sizeof(uint64_t));

namespace {

// How long a node whose lane call broke after the request left may take
// to be declared dead before this node gives up on the lost answer.
constexpr int64_t kLaneLossGraceNs = 10'000'000'000;

// Per-thread buffers: the home's lane reply (valid until the lane thread's
// next call, as rdmax::LaneHandler allows), a fault's request set aside and
// the answer it gets back.
std::vector<uint8_t>& LaneReply() {
  thread_local std::vector<uint8_t> reply;
  return reply;
}
std::vector<uint8_t>& LaneRequest() {
  thread_local std::vector<uint8_t> request;
  return request;
}
std::vector<uint8_t>& LaneAnswer() {
  thread_local std::vector<uint8_t> answer;
  return answer;
}

}  // namespace

bool DsmEngine::LanesOpen() const {
  return lanes_ && node_->membership().dead() == 0;
}

void DsmEngine::SendStaged(uint32_t to, absl::Span<uint8_t> frame, Ctx& ctx) {
  const auto type = static_cast<dir::MsgType>(frame[kStampBytes]);
  if (LanesOpen()) {
    if (ctx.lane_from == to && !ctx.lane_answered && dir::IsAnswer(type)) {
      // The header's page field (directory::EncodeHeader), little-endian.
      const uint64_t page = rdmax::GetU64(frame.data() + kStampBytes + 8);
      if (space_->StaticHomeOf(page) == self_) {
        const uint64_t seq =
            lane_answers_sent_[to].fetch_add(1, std::memory_order_acq_rel) + 1;
        rdmax::PutU64(frame.data(), seq);
        LaneReply().assign(frame.begin(), frame.end());
        ctx.lane_answered = true;
        return;
      }
    }
    // A fault thread with more faults of its batch to start keeps them
    // pipelined: this request takes the main connection.
    if (ctx.fault != nullptr && !ctx.fault->more_follow && !ctx.lane_request &&
        dir::IsRequest(type)) {
      rdmax::PutU64(frame.data(), 0);
      LaneRequest().assign(frame.begin(), frame.end());
      ctx.lane_request = true;
      ctx.lane_to = to;
      return;
    }
  }
  rdmax::PutU64(frame.data(),
                lane_answers_sent_[to].load(std::memory_order_acquire));
  outbox_->Send(to, frame);
}

void DsmEngine::CallHome(uint32_t to) {
  std::vector<uint8_t>& request = LaneRequest();
  std::vector<uint8_t>& answer = LaneAnswer();
  answer.resize(transport_->max_message_bytes());
  // Counted before it can leave: the bound on the answers `to` may number.
  lane_calls_to_[to].fetch_add(1, std::memory_order_acq_rel);
  absl::StatusOr<size_t> n = transport_->CallOnLane(to, kDsmFrameType, request,
                                                    absl::MakeSpan(answer));
  if (absl::IsResourceExhausted(n.status())) {
    // Nothing left: the main connection takes it, stamped as sent now.
    lane_fallbacks_.fetch_add(1, std::memory_order_relaxed);
    rdmax::PutU64(request.data(),
                  lane_answers_sent_[to].load(std::memory_order_acquire));
    outbox_->Send(to, request);
    return;
  }
  if (!n.ok()) {
    LaneFailed(to, n.status());
    return;
  }
  lane_calls_.fetch_add(1, std::memory_order_relaxed);
  if (*n > 0) TakeLaneAnswer(to, absl::MakeConstSpan(answer.data(), *n));
}

absl::Span<const uint8_t> DsmEngine::ServeLane(const rdmax::Message& m) {
  std::vector<uint8_t>& reply = LaneReply();
  reply.clear();
  const bool request =
      m.type == kDsmFrameType && m.payload.size() > kStampBytes &&
      dir::IsRequest(static_cast<dir::MsgType>(m.payload[kStampBytes]));
  if (!request || m.from >= config_.num_nodes()) {
    Error(absl::InvalidArgumentError(absl::StrCat(
        "a lane call of type ", m.type, " and ", m.payload.size(),
        " bytes from node ", m.from, " (only DSM requests travel on lanes)")));
    return {};
  }
  lane_requests_served_.fetch_add(1, std::memory_order_relaxed);
  HandleMessage(m.from, m.payload.subspan(kStampBytes), /*lane=*/true);
  return reply;
}

void DsmEngine::TakeLaneAnswer(uint32_t from, absl::Span<const uint8_t> reply) {
  if (reply.size() <= kStampBytes ||
      !dir::IsAnswer(static_cast<dir::MsgType>(reply[kStampBytes]))) {
    Error(absl::InvalidArgumentError(
        absl::StrCat("a lane reply of ", reply.size(), " bytes from node ",
                     from, " that is not an answer")));
    return;
  }
  const uint64_t seq = rdmax::GetU64(reply.data());
  if (!AnswerCountPossible(from, seq) || seq == 0) {
    Error(absl::InvalidArgumentError(absl::StrCat(
        "lane answer number ", seq, " from node ", from, " after ",
        lane_calls_to_[from].load(), " lane calls to it")));
    return;
  }
  HandleMessage(from, reply.subspan(kStampBytes));
  lane_answers_taken_.fetch_add(1, std::memory_order_relaxed);
  dsm::AnswerOrder& order = answer_order_[from];
  if (!order.Taken(seq)) {
    Error(absl::InvalidArgumentError(absl::StrCat(
        "lane answer number ", seq, " from node ", from, " came twice")));
    return;
  }
  for (auto frame = order.StartDrain(); frame; frame = order.ContinueDrain()) {
    HandleMessage(from, *frame);
  }
}

void DsmEngine::AdmitFrame(uint32_t from, absl::Span<const uint8_t> payload) {
  if (payload.size() <= kStampBytes || from >= config_.num_nodes()) {
    Error(absl::InvalidArgumentError(
        absl::StrCat("malformed DSM frame from node ", from, ": ",
                     payload.size(), " bytes, no room for its stamp")));
    return;
  }
  const absl::Span<const uint8_t> frame = payload.subspan(kStampBytes);
  const uint64_t after = rdmax::GetU64(payload.data());
  // A frame that follows more answers than this node ever asked that peer
  // for would wait for ever (and everything behind it): refused.
  if (!AnswerCountPossible(from, after)) {
    Error(absl::InvalidArgumentError(absl::StrCat(
        "DSM frame from node ", from, " follows ", after,
        " lane answers, but only ", lane_calls_to_[from].load(),
        " lane calls went to it")));
    return;
  }
  if (answer_order_[from].AdmitOrPark(after, frame)) {
    HandleMessage(from, frame);
  }
}

void DsmEngine::NoteDeaths() {
  const dir::Membership& members = node_->membership();
  for (uint32_t n = 0; n < config_.num_nodes(); ++n) {
    if (n != self_ && members.IsDead(n)) answer_order_[n].SenderDead();
  }
}

void DsmEngine::LaneFailed(uint32_t to, const absl::Status& st) {
  lane_failures_.fetch_add(1, std::memory_order_relaxed);
  base::Log(base::LogLevel::kWarning, "dsm node ", self_,
            ": a lane call to node ", to,
            " failed after its request left: ", st.message());
  Deferred d{MonotonicNs() + kLaneLossGraceNs, to, dir::Message{},
             Deferred::Kind::kLaneCheck};
  PushDeferred(d);
}

// The deferral thread: a node whose lane broke with an answer maybe in
// flight must have been declared dead by now; otherwise frames waiting for
// that answer, and the fault that asked, would wait for ever.
void DsmEngine::CheckLaneLoss(uint32_t to) {
  bool dead;
  {
    dsm::ExclusiveGuard guard(*locks_);
    dead = node_->membership().IsDead(to);
  }
  if (dead || !started_) return;
  Error(absl::UnavailableError(absl::StrCat(
      "a lane call to node ", to, " broke after its request left and node ", to,
      " was not declared dead within ", kLaneLossGraceNs / 1'000'000'000,
      " s: its answer may be lost")));
}

bool DsmEngine::AnswerCountPossible(uint32_t from, uint64_t count) const {
  return count <= lane_calls_to_[from].load(std::memory_order_acquire);
}

uint64_t DsmEngine::LaneAnswersSent() const {
  uint64_t total = 0;
  for (uint32_t n = 0; n < config_.num_nodes(); ++n) {
    total += lane_answers_sent_[n].load(std::memory_order_relaxed);
  }
  return total;
}

uint64_t DsmEngine::FramesParked() const {
  uint64_t total = 0;
  for (uint32_t n = 0; n < config_.num_nodes(); ++n) {
    total += answer_order_[n].parked_total();
  }
  return total;
}

}  // namespace ssihv::pager
