// Interrupt messages between APICs and their destination resolution, as a
// pure step (no KVM, no threads): an IPI or an I/O APIC interrupt goes in,
// the vCPUs whose local APIC accepts it come out. Kept apart from the local
// APIC model because in a VM spread over several processes some of those
// vCPUs live elsewhere: whoever resolves needs only the routing table (every
// vCPU's APIC ID, LDR, DFR and mode), not the APICs themselves.
//
// Intel SDM vol. 3A, ch. 11 ("Advanced Programmable Interrupt Controller"):
// 11.6.1 (ICR), 11.6.2 (determining IPI destination), 11.6.2.4 (lowest
// priority), 11.12.9/11.12.10 (x2APIC ICR and logical destination).
#ifndef SSIHV_KVM_APIC_ROUTING_H_
#define SSIHV_KVM_APIC_ROUTING_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace ssihv::kvm {

/// Delivery mode of an interrupt message: ICR bits 10:8 (SDM 11.6.1), the
/// same encoding in I/O APIC redirection entries and LVT entries.
enum class DeliveryMode : uint8_t {
  kFixed = 0,
  kLowestPriority = 1,
  kSmi = 2,
  kReserved3 = 3,
  kNmi = 4,
  kInit = 5,
  kStartup = 6,  // SIPI
  kExtInt = 7,
};
const char* DeliveryModeName(DeliveryMode mode);

/// ICR bits 19:18.
enum class Shorthand : uint8_t {
  kNone = 0,
  kSelf = 1,
  kAllIncludingSelf = 2,
  kAllExcludingSelf = 3,
};

/// An interrupt message as a local APIC (ICR, SELF IPI) or the I/O APIC
/// sends it, before its destinations are known.
struct ApicMessage {
  uint8_t vector = 0;
  DeliveryMode mode = DeliveryMode::kFixed;
  bool logical = false;  // destination mode: logical, else physical
  Shorthand shorthand = Shorthand::kNone;
  /// An 8-bit xAPIC / I/O APIC destination (0xff broadcast; with KVM's
  /// extended destination ID an I/O APIC may send up to 15 bits), or the
  /// 32-bit x2APIC one (0xffffffff broadcast) when `x2apic_format`.
  uint32_t destination = 0;
  bool x2apic_format = false;
  bool level_triggered = false;
  bool assert = true;  // the level bit: false only for INIT level de-assert
};

/// What one destination APIC receives of a message.
struct ApicDelivery {
  uint8_t vector = 0;
  DeliveryMode mode = DeliveryMode::kFixed;
  bool level_triggered = false;
  bool assert = true;

  bool operator==(const ApicDelivery&) const = default;
};
ApicDelivery DeliveryOf(const ApicMessage& message);

/// The DFR model field (DFR[31:28], xAPIC only).
inline constexpr uint8_t kDfrFlat = 0xf;
inline constexpr uint8_t kDfrCluster = 0x0;

/// What destination resolution needs to know of one local APIC. The VMM
/// keeps one per vCPU (index = global vCPU number) and updates it whenever
/// the guest changes the APIC's mode, ID, LDR, DFR, enable bits or TPR.
struct ApicRoutingEntry {
  uint32_t x2apic_id = 0;   // the initial APIC ID (CPUID, MADT): 32 bits
  uint8_t xapic_id = 0;     // the xAPIC ID register's ID field
  bool hw_enabled = true;   // IA32_APIC_BASE[11]
  bool sw_enabled = false;  // SVR[8]
  bool x2apic = false;      // IA32_APIC_BASE[10]
  uint32_t ldr = 0;         // the LDR register as read
  uint8_t dfr_model = kDfrFlat;
  uint8_t tpr = 0;  // for lowest-priority arbitration

  bool operator==(const ApicRoutingEntry&) const = default;
};

/// True if the APIC described by `entry`, the vCPU at `index`, is a
/// destination of `message` sent by vCPU `source` (-1: the I/O APIC), before
/// lowest-priority arbitration. A hardware-disabled APIC matches nothing.
bool MatchesDestination(const ApicMessage& message, int64_t source,
                        const ApicRoutingEntry& entry, uint32_t index);

/// Resolves `message` from vCPU `source` (-1: the I/O APIC) against
/// `table` (index = global vCPU number): `out` gets the indices of the vCPUs
/// that must receive it, ascending. Lowest priority picks one of the matches:
/// the lowest TPR among the software-enabled ones, ties broken by the vector
/// (KVM's "vector hashing"), so the choice is the same on every node that
/// resolves with the same table.
void ResolveDestinations(const ApicMessage& message, int64_t source,
                         absl::Span<const ApicRoutingEntry> table,
                         std::vector<uint32_t>* out);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_APIC_ROUTING_H_
