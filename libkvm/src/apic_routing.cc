#include "ssihv/kvm/apic_routing.h"

#include <algorithm>

namespace ssihv::kvm {
namespace {

constexpr uint32_t kXapicBroadcast = 0xff;
constexpr uint32_t kX2apicBroadcast = 0xffffffff;

bool IsBroadcast(const ApicMessage& m) {
  return m.destination ==
         (m.x2apic_format ? kX2apicBroadcast : kXapicBroadcast);
}

// SDM 11.6.2.1: the destination field against the APIC ID. An xAPIC-mode
// APIC compares its 8-bit ID; a destination above 0xff can only mean a full
// (x2APIC or extended) ID, so it is compared with the initial APIC ID: an AP
// with an ID above 254 is still in xAPIC mode when the BSP starts it by
// INIT/SIPI (KVM does the same).
bool MatchesPhysical(const ApicMessage& m, const ApicRoutingEntry& e) {
  if (e.x2apic || m.destination > 0xff) return m.destination == e.x2apic_id;
  return m.destination == e.xapic_id;
}

// SDM 11.6.2.2 (xAPIC flat and cluster models) and 11.12.10.2 (x2APIC
// cluster: LDR[31:16] the cluster, LDR[15:0] a bit per APIC in it).
bool MatchesLogical(const ApicMessage& m, const ApicRoutingEntry& e) {
  if (e.x2apic) {
    return (e.ldr >> 16) == (m.destination >> 16) &&
           (e.ldr & m.destination & 0xffff) != 0;
  }
  const uint32_t logical_id = e.ldr >> 24;
  const uint32_t mda = m.destination & 0xff;
  switch (e.dfr_model) {
    case kDfrFlat:
      return (logical_id & mda) != 0;
    case kDfrCluster:
      return (logical_id >> 4) == (mda >> 4) && (logical_id & mda & 0xf) != 0;
    default:
      return false;  // a reserved model addresses nothing
  }
}

// SDM 11.6.2.4: the processor with the lowest priority gets it. The table
// holds each APIC's TPR (not its full arbitration priority, which changes
// with every accepted interrupt); among equals the vector picks, which keeps
// the choice deterministic wherever it is made.
uint32_t PickLowestPriority(uint8_t vector,
                            absl::Span<const ApicRoutingEntry> table,
                            const std::vector<uint32_t>& matches) {
  bool any_enabled = false;
  for (uint32_t i : matches) any_enabled |= table[i].sw_enabled;
  int best_tpr = 256;
  for (uint32_t i : matches) {
    if (any_enabled && !table[i].sw_enabled) continue;
    best_tpr = std::min<int>(best_tpr, table[i].tpr);
  }
  std::vector<uint32_t> best;
  for (uint32_t i : matches) {
    if (any_enabled && !table[i].sw_enabled) continue;
    if (table[i].tpr == best_tpr) best.push_back(i);
  }
  return best[vector % best.size()];
}

}  // namespace

const char* DeliveryModeName(DeliveryMode mode) {
  switch (mode) {
    case DeliveryMode::kFixed:
      return "fixed";
    case DeliveryMode::kLowestPriority:
      return "lowest priority";
    case DeliveryMode::kSmi:
      return "SMI";
    case DeliveryMode::kReserved3:
      return "reserved";
    case DeliveryMode::kNmi:
      return "NMI";
    case DeliveryMode::kInit:
      return "INIT";
    case DeliveryMode::kStartup:
      return "SIPI";
    case DeliveryMode::kExtInt:
      return "ExtINT";
  }
  return "?";
}

ApicDelivery DeliveryOf(const ApicMessage& message) {
  return {message.vector, message.mode, message.level_triggered,
          message.assert};
}

bool MatchesDestination(const ApicMessage& message, int64_t source,
                        const ApicRoutingEntry& entry, uint32_t index) {
  if (!entry.hw_enabled) return false;
  switch (message.shorthand) {
    case Shorthand::kSelf:
      return source == index;
    case Shorthand::kAllIncludingSelf:
      return true;
    case Shorthand::kAllExcludingSelf:
      return source != index;
    case Shorthand::kNone:
      break;
  }
  if (IsBroadcast(message)) return true;
  return message.logical ? MatchesLogical(message, entry)
                         : MatchesPhysical(message, entry);
}

void ResolveDestinations(const ApicMessage& message, int64_t source,
                         absl::Span<const ApicRoutingEntry> table,
                         std::vector<uint32_t>* out) {
  out->clear();
  const uint32_t n = static_cast<uint32_t>(table.size());
  for (uint32_t i = 0; i < n; ++i) {
    if (MatchesDestination(message, source, table[i], i)) out->push_back(i);
  }
  if (message.mode == DeliveryMode::kLowestPriority && out->size() > 1) {
    const uint32_t pick = PickLowestPriority(message.vector, table, *out);
    out->assign(1, pick);
  }
}

}  // namespace ssihv::kvm
