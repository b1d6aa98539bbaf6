// Selective signalling of an RC QP's SENDs: which SEND asks for a
// completion, and which send slots a completion gives back. Pure (no verbs),
// so the rules are tested on the host (tests/send_signals_test.cc).
//
// A signaled SEND costs a completion event: in event mode the data thread
// wakes (epoll, ibv_get_cq_event, ibv_req_notify_cq, ibv_poll_cq) for every
// one. A remote page fault sends one frame each way, so with every SEND
// signaled each side's data thread woke once more per fault for nothing but
// to recycle a slot. Completions on one send queue come in posting order
// (InfiniBand RC), so one signaled SEND's completion also says that every
// SEND posted before it is done: signalling one SEND in `signal_every`
// recycles all of them. Two rules keep it live:
//  - once fewer than `signal_every` slots are free, every SEND is signaled,
//    so a sender that runs out of slots always has a signaled SEND ahead of
//    it whose completion frees them;
//  - a SEND that must report (a fence, or busy-poll mode, where pollers
//    count every posted work request) is signaled.
// A flushed SEND (the QP in error) reports its completion signaled or not;
// in posting order too, so it frees only itself and the ones before it.
#ifndef SSIHV_RDMAX_RDMA_SEND_SIGNALS_H_
#define SSIHV_RDMAX_RDMA_SEND_SIGNALS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace ssihv::rdmax {

class SendSignals {
 public:
  explicit SendSignals(uint32_t signal_every)
      : signal_every_(signal_every == 0 ? 1 : signal_every) {}

  /// Whether the SEND about to be posted asks for a completion, with
  /// `free_slots` send slots left after its own; `must` forces it.
  bool ShouldSignal(size_t free_slots, bool must) const {
    return must || unsignaled_ + 1 >= signal_every_ ||
           free_slots < signal_every_;
  }
  /// The SEND in `slot` was posted (`signaled` as ShouldSignal said).
  void Posted(uint32_t slot, bool signaled) {
    unreaped_.push_back(slot);
    unsignaled_ = signaled ? 0 : unsignaled_ + 1;
  }
  /// A completion of the SEND in `slot`: appends to `freed` the slots of it
  /// and of every SEND posted before it not yet freed; returns how many.
  size_t Completed(uint32_t slot, std::vector<uint32_t>* freed) {
    size_t n = 0;
    while (!unreaped_.empty()) {
      const uint32_t s = unreaped_.front();
      unreaped_.pop_front();
      freed->push_back(s);
      ++n;
      if (s == slot) break;
    }
    return n;
  }
  /// SENDs posted and not yet known complete.
  size_t unreaped() const { return unreaped_.size(); }

 private:
  uint32_t signal_every_;
  uint32_t unsignaled_ = 0;  // SENDs since the last signaled one
  std::deque<uint32_t> unreaped_;
};

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_RDMA_SEND_SIGNALS_H_
