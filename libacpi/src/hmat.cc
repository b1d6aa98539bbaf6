#include "ssihv/acpi/hmat.h"

#include <algorithm>
#include <cassert>
#include <numeric>

namespace ssihv::acpi {
namespace {

void AppendProximityDomain(ByteBuilder& b, uint32_t memory_node,
                           bool has_initiator) {
  [[maybe_unused]] const size_t start = b.size();
  b.U16(hmat_type::kProximityDomain);  // Type
  b.U16(0);                            // Reserved
  b.U32(kHmatProximitySize);           // Length
  // Flags: the node's own vCPUs are the initiator attached to its memory; a
  // memory-only node has none.
  b.U16(has_initiator ? kHmatInitiatorValid : 0);
  b.U16(0);                                // Reserved
  b.U32(has_initiator ? memory_node : 0);  // Attached Initiator PD
  b.U32(memory_node);                      // Memory Proximity Domain
  b.U32(0);                                // Reserved
  b.U64(0);  // Reserved (System Physical Address Range Base in ACPI 6.2)
  b.U64(0);  // Reserved (System Physical Address Range Length in ACPI 6.2)
  assert(b.size() - start == kHmatProximitySize);
}

// `values` is row-major: initiators x targets.
void AppendLocality(ByteBuilder& b, uint8_t data_type,
                    const std::vector<uint32_t>& initiators,
                    const std::vector<uint32_t>& targets,
                    const std::vector<uint64_t>& values) {
  assert(values.size() == initiators.size() * targets.size());
  const ScaledEntries scaled = ScaleToEntries(values);
  [[maybe_unused]] const size_t start = b.size();
  b.U16(hmat_type::kLocality);  // Type
  b.U16(0);                     // Reserved
  const size_t length = kHmatLocalityFixedSize + 4 * initiators.size() +
                        4 * targets.size() + 2 * values.size();
  b.U32(static_cast<uint32_t>(length));  // Length
  b.U8(0);          // Flags: [3:0] Memory Hierarchy 0 = memory
  b.U8(data_type);  // Data Type
  b.U8(0);          // Minimum Transfer Size: not specified
  b.U8(0);          // Reserved
  b.U32(static_cast<uint32_t>(initiators.size()));  // Number of Initiator PDs
  b.U32(static_cast<uint32_t>(targets.size()));     // Number of Target PDs
  b.U32(0);                                         // Reserved
  b.U64(scaled.base_unit);                          // Entry Base Unit
  for (uint32_t pd : initiators) b.U32(pd);  // Initiator Proximity Domain List
  for (uint32_t pd : targets) b.U32(pd);     // Target Proximity Domain List
  for (uint16_t e : scaled.entries) b.U16(e);  // Entry[initiator][target]
  assert(b.size() - start == length);
}

}  // namespace

ScaledEntries ScaleToEntries(absl::Span<const uint64_t> values) {
  ScaledEntries out;
  if (values.empty()) return out;
  uint64_t g = 0;
  uint64_t max = 0;
  for (uint64_t v : values) {
    assert(v > 0);
    g = std::gcd(g, v);
    max = std::max(max, v);
  }
  if (max / g <= kMaxHmatEntry) {
    out.base_unit = g;
    for (uint64_t v : values)
      out.entries.push_back(static_cast<uint16_t>(v / g));
    return out;
  }
  out.base_unit = (max + kMaxHmatEntry - 1) / kMaxHmatEntry;
  out.exact = true;
  for (uint64_t v : values) {
    uint64_t q = v / out.base_unit;
    uint64_t r = v % out.base_unit;
    // Round half up without overflowing: compare the remainder to the
    // divisor's upper half.
    if (r >= out.base_unit - out.base_unit / 2) ++q;
    q = std::clamp<uint64_t>(q, 1, kMaxHmatEntry);
    if (q * out.base_unit != v) out.exact = false;
    out.entries.push_back(static_cast<uint16_t>(q));
  }
  return out;
}

Bytes BuildHmat(const cluster::ClusterConfig& config, const OemInfo& oem) {
  const uint32_t n = static_cast<uint32_t>(config.num_nodes());
  std::vector<uint32_t> initiators;
  std::vector<uint32_t> targets;
  for (uint32_t node = 0; node < n; ++node) {
    if (config.nodes[node].vcpus > 0) initiators.push_back(node);
    targets.push_back(node);  // every node has memory (memory_mib > 0)
  }
  std::vector<uint64_t> latency_ps;
  std::vector<uint64_t> bandwidth_mbps;
  for (uint32_t i : initiators) {
    for (uint32_t t : targets) {
      latency_ps.push_back(config.memory_latency_ns[i][t] *
                           kPicosecondsPerNanosecond);
      bandwidth_mbps.push_back(config.memory_bandwidth_mbps[i][t]);
    }
  }
  ByteBuilder b;
  size_t start = BeginSdt(b, "HMAT", kHmatRevision, oem);
  b.U32(0);  // Reserved
  for (uint32_t node : targets) {
    AppendProximityDomain(b, node, config.nodes[node].vcpus > 0);
  }
  AppendLocality(b, hmat_data::kAccessLatency, initiators, targets, latency_ps);
  AppendLocality(b, hmat_data::kAccessBandwidth, initiators, targets,
                 bandwidth_mbps);
  FinishSdt(b, start);
  return std::move(b).Take();
}

}  // namespace ssihv::acpi
