// Inline reads on TCP (Transport::ClaimInline, docs/TRANSPORT.md): a
// thread that claimed a connection's reader role serves it itself.
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "send_batch.h"
#include "sys/posix.h"
#include "tcp/tcp_connection.h"

namespace ssihv::rdmax {

bool TcpConnection::ClaimInline(MessageType type) {
  if (!up() || !TakeCallerRole()) return false;
  inline_type_ = type;
  return true;
}

// The claiming thread sleeps in poll(2) on the socket and the caller's
// interrupt fd; what it reads it dispatches as the data thread would, but
// only frames MayConsume lets a caller take.
InlineStop TcpConnection::ServeInline(absl::FunctionRef<bool()> done,
                                      int interrupt_fd, absl::Time deadline) {
  for (;;) {
    if (done()) return InlineStop::kDone;
    Stop s;
    {
      // As the data thread does: answers to a burst of requests leave
      // together, when the burst's frames have been dispatched.
      SendBatch batch = SendBatchAccess::Dormant();
      s = DrainFrames(nullptr, &batch, &done);
    }
    if (s == Stop::kError || dead()) return InlineStop::kClosed;
    if (done()) return InlineStop::kDone;
    if (s == Stop::kYield) return InlineStop::kHandedOver;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return InlineStop::kTimedOut;
    const sys::PollPair ready = sys::PollIn(fd_.get(), interrupt_fd, left);
    if (!ready.first) {
      if (ready.second) return InlineStop::kInterrupted;
      continue;  // timeout or EINTR: the deadline is checked above
    }
    struct iovec iov[3];
    const int n = reader_.PrepareRead(iov);
    if (n == 0) return InlineStop::kHandedOver;  // nothing can be read now
    const sys::IoResult r = sys::RecvMsgNoWait(fd_.get(), iov, n);
    if (r.bytes > 0) {
      reader_.Commit(static_cast<size_t>(r.bytes));
      continue;
    }
    reader_.Commit(0);
    if (r.bytes == 0) {
      Close(absl::StrCat("node ", peer_, " closed the connection"));
      return InlineStop::kClosed;
    }
    if (r.err != EAGAIN && r.err != EWOULDBLOCK && r.err != EINTR) {
      Close(absl::StrCat("receive from node ", peer_, ": ",
                         std::strerror(r.err)));
      return InlineStop::kClosed;
    }
  }
}

}  // namespace ssihv::rdmax
