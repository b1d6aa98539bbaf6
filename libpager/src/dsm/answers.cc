// The fault thread reads its own answers (docs/PAGER.md, "Answers read by
// the fault thread").
//
// A remote fault used to wake two threads on this node when its answer
// came: the transport's data thread, to read and map it, and then the
// faulting vCPU. The fault thread that sent the request was asleep in
// read(2) on the uffd meanwhile. Now the fault thread claims the reader
// role of the connection its request goes out on (before it leaves: once
// it has, the data thread may already be awake for the answer), and after
// its batch of faults it waits for the answer on that connection and the
// uffd together (Pager::AwaitSourceAnswers), dispatching protocol frames
// itself, as the data thread would. Nothing about the protocol changes:
// the frames still travel on the one per-peer FIFO connection, and one
// thread at a time reads it, in order.
#include "absl/time/clock.h"
#include "dsm/engine.h"

namespace ssihv::pager {

namespace dir = ::ssihv::directory;

namespace {

// How long a fault thread waits for its answers at most. The wait ends
// earlier on a new fault or any frame it may not take; the bound covers an
// answer that comes on another connection (a third node's Data), which
// this thread does not see: the data thread has mapped it meanwhile.
constexpr absl::Duration kAnswerWaitBound = absl::Milliseconds(100);

// This fault thread's claim: the connection it reads and the pages whose
// faults it parked since its last wait.
struct AnswerWait {
  const DsmEngine* engine = nullptr;
  std::unique_ptr<rdmax::InlineReader> reader;
  uint32_t peer = 0;
  std::vector<dir::PageId> pages;
};

AnswerWait& ThreadAnswerWait() {
  thread_local AnswerWait w;
  return w;
}

}  // namespace

void DsmEngine::ClaimForAnswer(const StagedFrames& staged, const Fault& fault) {
  if (staged.frames.empty()) return;
  const uint32_t to = staged.frames.front().to;
  for (const StagedFrames::Frame& f : staged.frames) {
    if (f.to != to) return;  // answers from several nodes: the data thread
  }
  AnswerWait& w = ThreadAnswerWait();
  if (w.reader == nullptr) {
    w.reader = transport_->ClaimInline(to, kDsmFrameType);
    if (w.reader == nullptr) return;  // RDMA, loopback, or being read
    w.engine = this;
    w.peer = to;
  } else if (w.engine != this || w.peer != to) {
    return;  // this thread reads another connection already
  }
  w.pages.push_back(*space_->PageOfGpa(fault.gpa));
}

bool DsmEngine::ExpectsAnswers() const {
  const AnswerWait& w = ThreadAnswerWait();
  return w.reader != nullptr && w.engine == this;
}

bool DsmEngine::Parked(dir::PageId page) {
  dsm::PageGuard guard(*locks_, page);
  return WaitersOf(page).contains(page);
}

void DsmEngine::AwaitAnswers(int interrupt_fd) {
  AnswerWait& w = ThreadAnswerWait();
  if (w.reader == nullptr || w.engine != this) return;
  bool all_taken = false;
  if (interrupt_fd >= 0) {
    auto done = [&] {
      if (failed_.load(std::memory_order_acquire)) return true;
      for (dir::PageId page : w.pages) {
        if (Parked(page)) return false;
      }
      return true;
    };
    all_taken =
        w.reader->Serve(done, interrupt_fd, absl::Now() + kAnswerWaitBound) ==
        rdmax::InlineStop::kDone;
  }
  (all_taken ? answer_waits_complete_ : answer_waits_cut_)
      .fetch_add(1, std::memory_order_relaxed);
  w.reader.reset();  // the data thread reads the connection again
  w.pages.clear();
  w.engine = nullptr;
}

}  // namespace ssihv::pager
