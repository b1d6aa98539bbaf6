// The messages ssihv-vmm node processes exchange over the node transport
// (librdmax, next to the DSM's page-coherence frames): interrupts for
// another node's vCPUs, I/O APIC EOIs, routing-table updates, port and MMIO
// accesses forwarded to node 0's devices, the guest's stop, start-up clock
// synchronisation and liveness. Pure encoders and validating decoders: every
// field from the network is checked (docs/VMM.md, "Node messages").
#ifndef SSIHV_APPS_VMM_NODE_WIRE_H_
#define SSIHV_APPS_VMM_NODE_WIRE_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ssihv/kvm/apic_routing.h"

namespace ssihv::vmm {

/// Message types (librdmax MessageType). The DSM uses 0x5D01.
enum NodeMessage : uint16_t {
  kMsgDeliver = 0x5610,    // one-way: an interrupt for the receiver's vCPUs
  kMsgIoApicEoi = 0x5611,  // one-way to node 0: EOI of a level vector
  kMsgRouting = 0x5612,    // one-way to all: a vCPU's routing entry changed
  kMsgIo = 0x5613,         // request to node 0: a port or MMIO access
  kMsgStop = 0x5614,       // one-way to all: the guest stopped
  kMsgClock = 0x5615,      // request to node 0: its guest clock
  kMsgHeartbeat = 0x5616,  // one-way to all, every second
  kMsgHello = 0x5617,      // one-way to all, at start: who I am, my config
  kMsgAction = 0x5618,     // request to a peer: pause/resume/stop (the API)
  kMsgQuiesced = 0x5619,   // one-way to all, empty: my vCPUs have stopped
};

/// An interrupt for some of the receiver's vCPUs (global vCPU numbers).
struct DeliverMsg {
  kvm::ApicDelivery delivery;
  std::vector<uint32_t> vcpus;
};
std::vector<uint8_t> Encode(const DeliverMsg& m);
/// `num_vcpus`: the cluster's; every vCPU must be below it.
absl::StatusOr<DeliverMsg> DecodeDeliver(absl::Span<const uint8_t> p,
                                         uint32_t num_vcpus);

struct EoiMsg {
  uint8_t vector = 0;
};
std::vector<uint8_t> Encode(const EoiMsg& m);
absl::StatusOr<EoiMsg> DecodeEoi(absl::Span<const uint8_t> p);

struct RoutingMsg {
  uint32_t vcpu = 0;
  kvm::ApicRoutingEntry entry;
};
std::vector<uint8_t> Encode(const RoutingMsg& m);
absl::StatusOr<RoutingMsg> DecodeRouting(absl::Span<const uint8_t> p,
                                         uint32_t num_vcpus);

enum class IoSpace : uint8_t { kPio = 0, kMmio = 1 };
/// A port or MMIO access by a vCPU of another node, done by node 0.
struct IoMsg {
  IoSpace space = IoSpace::kPio;
  bool is_write = false;
  uint64_t addr = 0;
  uint8_t size = 1;               // 1, 2, 4 or 8 bytes
  std::array<uint8_t, 8> data{};  // the written bytes (writes)
};
std::vector<uint8_t> Encode(const IoMsg& m);
absl::StatusOr<IoMsg> DecodeIo(absl::Span<const uint8_t> p);
/// The answer to an IoMsg: the bytes read (empty for a write).
std::vector<uint8_t> EncodeIoResult(absl::Span<const uint8_t> read);
absl::StatusOr<std::vector<uint8_t>> DecodeIoResult(absl::Span<const uint8_t> p,
                                                    const IoMsg& request);

/// Why the guest stopped, as the node that saw it tells the others.
enum class StopKind : uint8_t {
  kPowerOff = 0,
  kReset = 1,
  kTripleFault = 2,
  kPanic = 3,     // the guest kernel panicked (node 0's console saw it)
  kError = 4,     // a VMM, KVM or pager failure on that node
  kStopped = 5,   // a signal or the console escape on that node
  kPeerLost = 6,  // that node declared a node dead
  kApiStop = 7,   // POST /vm/stop on some node: an orderly stop, exit 0
};
const char* StopKindName(StopKind kind);
struct StopMsg {
  StopKind kind = StopKind::kStopped;
  int32_t vcpu = -1;  // the vCPU that caused it; -1: none
  std::string text;   // at most kMaxStopText bytes
};
inline constexpr size_t kMaxStopText = 1024;
std::vector<uint8_t> Encode(const StopMsg& m);
absl::StatusOr<StopMsg> DecodeStop(absl::Span<const uint8_t> p);

/// A cluster-wide action of the control API (POST /vm/pause, resume,
/// stop), forwarded by the node that took the request to every other.
enum class ActionKind : uint8_t { kPause = 0, kResume = 1, kStop = 2 };
const char* ActionKindName(ActionKind kind);
struct ActionMsg {
  ActionKind action = ActionKind::kPause;
};
std::vector<uint8_t> Encode(const ActionMsg& m);
absl::StatusOr<ActionMsg> DecodeAction(absl::Span<const uint8_t> p);

/// A node's answer to an ActionMsg: an absl status code (0: done) and the
/// status message (at most kMaxActionText bytes).
struct ActionResultMsg {
  uint8_t code = 0;
  std::string message;
};
inline constexpr size_t kMaxActionText = 512;
ActionResultMsg ToActionResult(const absl::Status& status);
absl::Status FromActionResult(const ActionResultMsg& m);
std::vector<uint8_t> Encode(const ActionResultMsg& m);
absl::StatusOr<ActionResultMsg> DecodeActionResult(absl::Span<const uint8_t> p);

/// Node 0's guest clock, for the other nodes' KVM_SET_CLOCK at start.
struct ClockMsg {
  uint64_t kvmclock_ns = 0;  // KVM_GET_CLOCK .clock
  uint32_t flags = 0;        // KVM_GET_CLOCK .flags
  uint64_t realtime_ns = 0;  // .realtime (valid with KVM_CLOCK_REALTIME)
  std::array<uint8_t, 16> boot_id{};  // the host's boot id
  /// The guest TSC offset of node 0's vCPUs (KVM_VCPU_TSC_OFFSET), valid
  /// when has_tsc_offset: a node on the same host (same boot id) uses it
  /// too, so every vCPU of the guest reads one TSC.
  bool has_tsc_offset = false;
  uint64_t tsc_offset = 0;
};
std::vector<uint8_t> Encode(const ClockMsg& m);
absl::StatusOr<ClockMsg> DecodeClock(absl::Span<const uint8_t> p);

struct HeartbeatMsg {
  uint64_t seq = 0;
};
std::vector<uint8_t> Encode(const HeartbeatMsg& m);
absl::StatusOr<HeartbeatMsg> DecodeHeartbeat(absl::Span<const uint8_t> p);

/// What a node says first: nodes compare configs before any guest memory
/// moves, and refuse a peer whose config differs.
struct HelloMsg {
  uint32_t node = 0;
  std::array<uint8_t, 32> config_digest{};  // SHA-256 of the canonical config
  uint32_t pid = 0;
  std::string host;  // at most 255 bytes
};
std::vector<uint8_t> Encode(const HelloMsg& m);
absl::StatusOr<HelloMsg> DecodeHello(absl::Span<const uint8_t> p);

}  // namespace ssihv::vmm

#endif  // SSIHV_APPS_VMM_NODE_WIRE_H_
