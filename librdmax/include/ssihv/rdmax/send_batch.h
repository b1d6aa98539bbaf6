// SendBatch: the messages a thread sends in a burst leave together, in one
// system call per peer, when the batch ends.
//
// A node asking a home for a read-ahead window sends one request per page;
// the home answers each with a page; the requester acknowledges each. Sent
// one by one, every message is a sendmsg, and over loopback TCP each sendmsg
// also runs the receiver's TCP input path. Inside a batch the TCP backend
// appends a message to its connection's send queue (the copy it makes anyway
// when the socket is full) and sends the queue when the batch ends. Other
// backends send at once. The TCP data thread batches the answers to a burst
// of received frames by itself.
//
// Rules: per-peer order is kept; another thread's sends to the same peer may
// push held messages out early (never reorder them). Do not wait for an
// answer inside a batch (Fetch, CallSync, a waiting Send): what the answer
// needs may be held. Batches do not nest: an inner one is inert.
#ifndef SSIHV_RDMAX_SEND_BATCH_H_
#define SSIHV_RDMAX_SEND_BATCH_H_

#include <memory>
#include <vector>

namespace ssihv::rdmax {

class SendBatchAccess;

class SendBatch {
 public:
  /// Holds this thread's sends until destruction (unless a batch is active).
  SendBatch() : SendBatch(/*engaged=*/true) {}
  /// Sends what it held.
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  /// A backend's connection that holds messages back for a batch.
  class Member {
   public:
    virtual ~Member() = default;
    /// Sends what it held (on the batch's thread).
    virtual void FlushHeld() = 0;
  };

 private:
  friend class SendBatchAccess;
  explicit SendBatch(bool engaged);

  bool installed_ = false;
  bool engaged_ = false;
  std::vector<std::shared_ptr<Member>> held_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_SEND_BATCH_H_
