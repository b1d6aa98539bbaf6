// One authenticated TCP connection to a peer: the data plane of the TCP
// backend.
//
// SENDING (any thread): a frame goes out with one sendmsg(MSG_DONTWAIT) of
// [header | payload]; only what the kernel does not take is copied into the
// bounded user-space ring, flushed by the data thread on EPOLLOUT. Frames
// keep their order because a frame is sent directly only when the ring is
// empty. The ring's bound is the backpressure: Send waits or fails, and the
// data thread stops reading requests (whose answers it could not queue).
//
// RECEIVING: one thread at a time holds the reader role (read_mu_). Usually
// the data thread, woken by epoll. A thread blocked in a synchronous Fetch
// or CallSync takes the role itself if it is free, disarms EPOLLIN (so the
// data thread is not woken for nothing) and reads its own response, with a
// single recvmsg into [header | its buffer] for a fetch. It consumes only
// responses to synchronous operations; at anything else it stops, and the
// data thread takes over (callbacks never run on a caller's thread).
//
// CLOSING: Close() (any thread) shuts the socket down, which wakes a
// blocked reader; the data thread then fails every pending operation while
// holding the reader role, so no late response can write into a buffer
// whose fetch already returned. Close() also closes the connection's fetch
// lanes (fetch_lane.h): they belong to this incarnation of the peer.
#ifndef SSIHV_RDMAX_TCP_TCP_CONNECTION_H_
#define SSIHV_RDMAX_TCP_TCP_CONNECTION_H_

#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "frame_reader.h"
#include "framed_transport.h"
#include "pending.h"
#include "regions.h"
#include "send_batch.h"
#include "ssihv/base/unique_fd.h"
#include "tcp/byte_ring.h"
#include "tcp/fetch_lane.h"

namespace ssihv::rdmax {

class TcpTransport;

class TcpConnection : public FrameSink,
                      public FrameChannel,
                      public SendBatch::Member,
                      public std::enable_shared_from_this<TcpConnection> {
 public:
  TcpConnection(TcpTransport* transport, NodeId peer, base::UniqueFd fd,
                uint64_t token);
  ~TcpConnection() override;

  NodeId peer() const override { return peer_; }
  uint64_t token() const { return token_; }
  int fd() const { return fd_.get(); }
  bool dead() const { return dead_.load(std::memory_order_acquire); }
  bool up() const override { return up_.load(std::memory_order_acquire); }
  PendingTable& pending() override { return pending_; }
  PeerRegions& peer_regions() { return peer_regions_; }
  FetchLanes& lanes() { return lanes_; }

  /// Sends [header | payload iovecs] (header.length must match).
  absl::Status SendFrame(const FrameHeader& header, const struct iovec* payload,
                         int count, SendMode mode, absl::Time deadline);
  absl::Status SendFrame(const FrameHeader& header,
                         absl::Span<const uint8_t> payload, SendMode mode,
                         absl::Time deadline) override;
  bool TakeRequest(uint64_t id) override;

  /// Reads the socket itself when no other thread does (FrameChannel).
  void AwaitSync(PendingOp* op, absl::Time deadline) override;

  // ---- data thread ----
  void OnEvents(uint32_t events);
  /// Reads and dispatches what is available (the data thread's reader).
  void ServiceRead();
  /// Fails everything in flight (after Close). Idempotent.
  void Teardown();
  /// Fails async operations whose deadline passed by closing.
  void CheckTimeouts(absl::Time now);
  /// Data thread (restore timer): watch the socket again; if a caller is
  /// reading it right now, that caller does it when it releases the role.
  void RestoreInWhenFree();

  /// Sends what a SendBatch held back (the batch's thread).
  void FlushHeld() override;

  /// Any thread. Logs `reason` once.
  void Close(absl::string_view reason) override;

  // FrameSink (role holder only).
  bool MayConsume(const FrameHeader& header) override;
  absl::StatusOr<uint8_t*> FetchTarget(uint64_t id, uint32_t length) override;

 private:
  enum class Stop { kDone, kYield, kError };
  // Role holder: drains buffered frames; `caller_op` set when a sync caller
  // reads (stops once it completed).
  Stop DrainFrames(PendingOp* caller_op, SendBatch* batch = nullptr);
  // The data thread's DrainFrames: answers to a burst leave together.
  Stop DrainBatched();
  void Dispatch(const Frame& frame);
  void OnRegionFrame(const Frame& frame);
  void OnFetchResponse(const Frame& frame);
  void ServeFetch(const Frame& frame);
  bool ReadAsCaller(PendingOp* op, absl::Time deadline);
  void OnWritable();
  void SetWantIn(bool want);
  void RestoreIn();
  void UpdateArm();  // arm_mu_ held
  size_t RoomLocked() const;

  TcpTransport* const transport_;
  const NodeId peer_;
  base::UniqueFd fd_;
  const uint64_t token_;
  const size_t reply_cost_;
  const size_t fetch_reply_cost_;
  std::atomic<bool> dead_{false};
  std::atomic<bool> up_{false};
  bool torn_down_ = false;  // data thread

  // Send side.
  std::mutex send_mu_;
  std::condition_variable send_cv_;
  ByteRing ring_;
  size_t capacity_;
  size_t reserved_ = 0;
  absl::flat_hash_set<uint64_t> open_requests_;
  bool held_ = false;  // frames in ring_ wait for a SendBatch's flush

  // Receive side (reader role).
  std::mutex read_mu_;
  bool reader_is_caller_ = false;
  std::atomic<bool> restore_pending_{false};
  bool paused_ = false;  // data thread stopped reading for lack of room
  FrameReader reader_;

  // Epoll interest (EPOLLIN unless a caller reads or paused; EPOLLOUT while
  // the ring holds bytes).
  std::mutex arm_mu_;
  bool want_in_ = true;      // false while paused (backpressure)
  bool caller_off_ = false;  // a caller switched EPOLLIN off (see AwaitSync)
  bool want_out_ = false;
  uint32_t armed_ = 0;

  PendingTable pending_;
  PeerRegions peer_regions_;
  FetchLanes lanes_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_TCP_TCP_CONNECTION_H_
