// The serving side of an RDMA lane (rdma_lane.h; docs/TRANSPORT.md, "Lane
// calls"): a responder QP connected to the peer's lane QP, open to
// REMOTE_READ (the device serves the peer's fetches with no work here),
// with its own CQ and completion channel and one thread. The thread keeps
// one RECV posted, sleeps on the CQ, runs the transport's lane handler on
// each kRequest frame and answers with one SEND from its own registered
// buffer: the lane's caller waits for nothing else (no data thread on
// either side), as over TCP. The RECV is posted again before the answer
// leaves, so the peer's next call always finds one.
//
// Shutdown moves the QP to the error state: the posted RECV completes with
// a flush error and the thread ends. The peer's lanes are shut down when
// its connection closes; their threads are joined by the transport, never
// on its data thread (a handler may be waiting for a lock whose holder
// waits for the data thread).
#ifndef SSIHV_RDMAX_RDMA_RDMA_LANE_SERVER_H_
#define SSIHV_RDMAX_RDMA_RDMA_LANE_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "rdma/device.h"
#include "rdma/rc_qp.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"
#include "sys/verbs.h"

namespace ssihv::rdmax {

class RdmaTransport;

class RdmaLaneServer {
 public:
  /// The responder QP, connected to `fetcher` (the peer's lane QP), its CQ
  /// and buffers; the thread starts with Start().
  static absl::StatusOr<std::unique_ptr<RdmaLaneServer>> Create(
      RdmaTransport* transport, const RdmaParamsPayload& fetcher, NodeId peer);
  ~RdmaLaneServer();  // Shutdown, then joins the thread

  RdmaLaneServer(const RdmaLaneServer&) = delete;
  RdmaLaneServer& operator=(const RdmaLaneServer&) = delete;

  /// What the peer needs to connect its lane QP.
  const RdmaParamsPayload& params() const { return params_; }
  /// Posts the first RECV and starts the thread.
  absl::Status Start();
  /// Any thread: QP to the error state; the thread ends soon after.
  void Shutdown();
  /// The thread has ended (joining it does not wait).
  bool finished() const { return finished_.load(std::memory_order_acquire); }

 private:
  RdmaLaneServer(RdmaTransport* transport, NodeId peer);
  void Run();
  /// Serves the request of `bytes` in the receive buffer; false ends the
  /// lane (logged).
  bool Serve(uint32_t bytes);
  bool PostRecv();
  /// Sends the answer frame in the send buffer (waits for the previous
  /// SEND's completion first: the buffer is reused).
  bool Answer(const FrameHeader& h, const uint8_t* payload);
  /// The next completion (sleeping on the channel); false on an error.
  bool Next(ibv_wc* wc);
  bool End(absl::string_view why);

  RdmaTransport* const transport_;
  const NodeId peer_;
  const size_t slot_bytes_;  // frame header + max_message_bytes
  RdmaParamsPayload params_;
  bool send_pending_ = false;     // a SEND not yet seen complete (thread)
  std::vector<uint8_t> request_;  // the request being served (thread)
  std::atomic<bool> finished_{false};
  // Destroyed QP first, then CQ, channel, registration, memory; the thread
  // is joined before any of them (destructor).
  base::MappedRegion mem_;  // receive buffer, then send buffer
  sys::Mr mr_;
  OwnCq cq_;
  sys::Qp qp_;
  std::thread thread_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_RDMA_LANE_SERVER_H_
