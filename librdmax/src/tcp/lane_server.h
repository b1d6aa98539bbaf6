// TCP fetch lanes, the serving side (docs/TRANSPORT.md, "Fetch lanes").
//
// Each accepted lane gets a thread that blocks in recv for the next request.
// A lane call (kRequest) goes to the transport's LaneHandler on this thread
// and its response leaves with one sendmsg. A fetch request is checked against
// this node's exported regions (a fetch outside them is refused with an error
// response, as on the main connection) and answers with one sendmsg of [header
// | bytes] straight from region memory, holding the region read lock while the
// kernel copies them (so UnregisterRegion waits for it). Anything but a
// well-formed fetch request closes the lane with a logged reason. That is the
// raw blocking server of BM_Floor/tcp_rtt_4k plus a header check.
//
// Threads are bounded: at most fetch_lanes lanes per peer, accepted only
// while the peer's main connection is up, and closed when it goes down.
#ifndef SSIHV_RDMAX_TCP_LANE_SERVER_H_
#define SSIHV_RDMAX_TCP_LANE_SERVER_H_

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::rdmax {

class TcpTransport;

class ServedLane {
 public:
  /// `fd`: an authenticated, blocking lane socket from `peer`.
  ServedLane(TcpTransport* transport, NodeId peer, base::UniqueFd fd);
  /// Stops and joins the thread.
  ~ServedLane();
  ServedLane(const ServedLane&) = delete;
  ServedLane& operator=(const ServedLane&) = delete;

  void Start();
  /// Any thread: shuts the socket down; the thread ends soon after.
  void Stop();
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  NodeId peer() const { return peer_; }

 private:
  void Run();
  /// Serves one request; false ends the lane (the reason is logged).
  bool ServeOne();
  /// Reads one request frame into request_; rejects a bad header as soon
  /// as it is in.
  bool ReadRequest(FrameHeader* header);
  bool ServeFetch(const FrameHeader& h);
  bool ServeCall(const FrameHeader& h);
  /// Sends what spill_ holds, blocking up to SO_SNDTIMEO.
  bool SendSpill();
  /// Sends what the kernel takes now; copies the rest into spill_.
  bool Respond(const FrameHeader& header, const uint8_t* payload,
               size_t length);
  bool End(absl::string_view why, bool malformed = false);

  TcpTransport* const transport_;
  const NodeId peer_;
  base::UniqueFd fd_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};
  // What the kernel did not take of a large response, sent after the
  // region lock is released (allocated only if ever needed).
  std::vector<uint8_t> spill_;
  // The request being served: header and payload.
  std::vector<uint8_t> request_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TCP_LANE_SERVER_H_
