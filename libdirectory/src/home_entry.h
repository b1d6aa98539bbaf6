// Private helpers over HomeAgent::Entry bits, shared by the home agent's
// normal and recovery transitions.
#ifndef SSIHV_DIRECTORY_SRC_HOME_ENTRY_H_
#define SSIHV_DIRECTORY_SRC_HOME_ENTRY_H_

#include <cstdint>

#include "ssihv/directory/home_agent.h"
#include "ssihv/directory/message.h"

namespace ssihv::directory::internal {

// Entry::bits layout.
inline constexpr uint8_t kStateMask = 0x03;
inline constexpr uint8_t kPhaseShift = 2;
inline constexpr uint8_t kPhaseMask = 0x07 << kPhaseShift;
inline constexpr uint8_t kWriteBit = 0x20;   // write txn (recovering: lost)
inline constexpr uint8_t kPulledBit = 0x40;  // read txn granted by kPullGrant
inline constexpr uint8_t kRunBit = 0x80;     // txn granted in a kDataRun

/// Entry::source when the designated source died before it was asked.
inline constexpr uint8_t kLostSource = 0xFE;

inline NodeMask BitOrZero(uint8_t n) { return n < kMaxNodes ? Bit(n) : 0; }
inline NodeId Lowest(NodeMask m) {
  return static_cast<NodeId>(__builtin_ctzll(m));
}

template <typename E>
DirState StateOf(const E& e) {
  return static_cast<DirState>(e.bits & kStateMask);
}
template <typename E>
void SetState(E& e, DirState s) {
  e.bits =
      static_cast<uint8_t>((e.bits & ~kStateMask) | static_cast<uint8_t>(s));
}
template <typename E>
TxnPhase PhaseOf(const E& e) {
  return static_cast<TxnPhase>((e.bits & kPhaseMask) >> kPhaseShift);
}
template <typename E>
void SetPhase(E& e, TxnPhase p) {
  e.bits = static_cast<uint8_t>((e.bits & ~kPhaseMask) |
                                (static_cast<uint8_t>(p) << kPhaseShift));
}
template <typename E>
bool IsWrite(const E& e) {
  return e.bits & kWriteBit;
}
template <typename E>
bool IsPulled(const E& e) {
  return e.bits & kPulledBit;
}
template <typename E>
bool IsRun(const E& e) {
  return e.bits & kRunBit;
}
template <typename E>
void SetFlag(E& e, uint8_t flag, bool on) {
  e.bits = static_cast<uint8_t>(on ? (e.bits | flag) : (e.bits & ~flag));
}
/// The copies a write transaction still waits on (kAcks, kAbortAcks).
template <typename E>
NodeMask PendingAcks(const E& e) {
  return e.copies & ~BitOrZero(e.requester) & ~BitOrZero(e.source);
}

}  // namespace ssihv::directory::internal

#endif  // SSIHV_DIRECTORY_SRC_HOME_ENTRY_H_
