// Destination resolution against the SDM (vol. 3A 11.6.2, 11.12.10), as a
// table of cases: physical, logical flat and cluster (xAPIC), x2APIC
// cluster, shorthands, broadcast, lowest priority, disabled APICs, and
// IDs above 255.
#include "ssihv/kvm/apic_routing.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "ssihv/kvm/ioapic.h"

namespace ssihv::kvm {
namespace {

ApicRoutingEntry Xapic(uint8_t id, uint8_t logical_id, uint8_t model) {
  ApicRoutingEntry e;
  e.x2apic_id = id;
  e.xapic_id = id;
  e.sw_enabled = true;
  e.ldr = uint32_t{logical_id} << 24;
  e.dfr_model = model;
  return e;
}

ApicRoutingEntry X2apic(uint32_t id) {
  ApicRoutingEntry e;
  e.x2apic_id = id;
  e.xapic_id = static_cast<uint8_t>(id);
  e.sw_enabled = true;
  e.x2apic = true;
  e.ldr = ((id >> 4) << 16) | (1u << (id & 0xf));
  return e;
}

ApicMessage Msg(uint32_t dest, bool logical, Shorthand sh = Shorthand::kNone,
                bool x2 = false, DeliveryMode mode = DeliveryMode::kFixed) {
  ApicMessage m;
  m.vector = 0x40;
  m.mode = mode;
  m.logical = logical;
  m.shorthand = sh;
  m.destination = dest;
  m.x2apic_format = x2;
  return m;
}

std::vector<uint32_t> Resolve(const ApicMessage& m, int64_t source,
                              const std::vector<ApicRoutingEntry>& table) {
  std::vector<uint32_t> out;
  ResolveDestinations(m, source, table, &out);
  return out;
}

using V = std::vector<uint32_t>;

struct Case {
  std::string name;
  ApicMessage message;
  int64_t source;
  V want;
};

TEST_CASE("xAPIC flat model: physical, logical bitmask, broadcast") {
  // Four APICs, logical IDs one bit each (what Linux's flat mode writes).
  const std::vector<ApicRoutingEntry> t = {
      Xapic(0, 0x01, kDfrFlat), Xapic(1, 0x02, kDfrFlat),
      Xapic(2, 0x04, kDfrFlat), Xapic(3, 0x08, kDfrFlat)};
  const std::vector<Case> cases = {
      {"physical 2", Msg(2, false), 0, {2}},
      {"physical absent 9", Msg(9, false), 0, {}},
      {"physical broadcast 0xff", Msg(0xff, false), 0, {0, 1, 2, 3}},
      {"logical 0x02", Msg(0x02, true), 0, {1}},
      {"logical 0x0a (two bits)", Msg(0x0a, true), 0, {1, 3}},
      {"logical 0x30 (no one)", Msg(0x30, true), 0, {}},
      {"logical broadcast 0xff", Msg(0xff, true), 0, {0, 1, 2, 3}},
      {"self", Msg(0, false, Shorthand::kSelf), 2, {2}},
      {"all including self",
       Msg(0, false, Shorthand::kAllIncludingSelf),
       1,
       {0, 1, 2, 3}},
      {"all excluding self",
       Msg(0, false, Shorthand::kAllExcludingSelf),
       1,
       {0, 2, 3}},
      {"shorthand ignores the destination",
       Msg(3, false, Shorthand::kAllExcludingSelf),
       3,
       {0, 1, 2}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK(Resolve(c.message, c.source, t) == c.want);
  }
}

TEST_CASE("xAPIC cluster model: cluster in MDA[7:4], members in MDA[3:0]") {
  // Clusters 1 and 2, two members each (logical IDs 0x11, 0x12, 0x21, 0x22).
  const std::vector<ApicRoutingEntry> t = {
      Xapic(0, 0x11, kDfrCluster), Xapic(1, 0x12, kDfrCluster),
      Xapic(2, 0x21, kDfrCluster), Xapic(3, 0x22, kDfrCluster)};
  const std::vector<Case> cases = {
      {"cluster 1 member 2", Msg(0x12, true), 0, {1}},
      {"cluster 1 both", Msg(0x13, true), 0, {0, 1}},
      {"cluster 2 member 1", Msg(0x21, true), 0, {2}},
      {"cluster 3 (empty)", Msg(0x31, true), 0, {}},
      {"member bits of another cluster", Msg(0x24, true), 0, {}},
      {"broadcast 0xff", Msg(0xff, true), 0, {0, 1, 2, 3}},
      {"physical still by APIC ID", Msg(3, false), 0, {3}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK(Resolve(c.message, c.source, t) == c.want);
  }
}

TEST_CASE("x2APIC: 32-bit physical IDs, cluster logical, 0xffffffff") {
  // IDs 0, 1, 17 and 300: clusters 0, 0, 1 and 18.
  const std::vector<ApicRoutingEntry> t = {X2apic(0), X2apic(1), X2apic(17),
                                           X2apic(300)};
  const std::vector<Case> cases = {
      {"physical 300", Msg(300, false, Shorthand::kNone, true), 0, {3}},
      {"physical 17", Msg(17, false, Shorthand::kNone, true), 0, {2}},
      {"physical broadcast",
       Msg(0xffffffff, false, Shorthand::kNone, true),
       0,
       {0, 1, 2, 3}},
      {"0xff is not a broadcast in x2APIC format",
       Msg(0xff, false, Shorthand::kNone, true),
       0,
       {}},
      {"cluster 0 bits 0,1",
       Msg(0x00000003, true, Shorthand::kNone, true),
       0,
       {0, 1}},
      {"cluster 1 bit 1",
       Msg(0x00010002, true, Shorthand::kNone, true),
       0,
       {2}},
      {"cluster 18 bit 12",
       Msg(0x00121000, true, Shorthand::kNone, true),
       0,
       {3}},
      {"cluster 1 bit 0 (no one)",
       Msg(0x00010001, true, Shorthand::kNone, true),
       0,
       {}},
      {"logical broadcast",
       Msg(0xffffffff, true, Shorthand::kNone, true),
       0,
       {0, 1, 2, 3}},
      {"self", Msg(0, false, Shorthand::kSelf, true), 3, {3}},
      // An I/O APIC message (8-bit format): 0xff is a broadcast to x2APIC
      // targets too.
      {"8-bit broadcast", Msg(0xff, false), -1, {0, 1, 2, 3}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK(Resolve(c.message, c.source, t) == c.want);
  }
}

TEST_CASE("an AP with an ID above 255 is reached while still in xAPIC mode") {
  std::vector<ApicRoutingEntry> t = {X2apic(0), X2apic(1)};
  ApicRoutingEntry ap = Xapic(0, 0, kDfrFlat);
  ap.x2apic_id = 260;
  ap.xapic_id = 260 & 0xff;  // 4: what its 8-bit ID register holds
  t.push_back(ap);
  // INIT from the BSP (x2APIC ICR, dest 260) reaches it...
  CHECK(Resolve(Msg(260, false, Shorthand::kNone, true, DeliveryMode::kInit), 0,
                t) == V{2});
  // ...and a destination of 4 does not mistake it for APIC 4.
  CHECK(Resolve(Msg(4, false, Shorthand::kNone, true), 0, t) == V{2});
  CHECK(Resolve(Msg(5, false, Shorthand::kNone, true), 0, t).empty());
}

TEST_CASE("I/O APIC extended destination ID reaches APIC IDs above 255") {
  const std::vector<ApicRoutingEntry> t = {X2apic(0), X2apic(0x1ff)};
  // RTE: vector 0x33, physical, destination bits 7:0 = 0xff and bits 14:8 =
  // 1 in RTE[55:49].
  const uint64_t rte = 0x33 | (uint64_t{0xff} << 56) | (uint64_t{1} << 49);
  ApicMessage m = IoApicMessage(rte);
  CHECK(m.destination == 0x1ff);
  CHECK(Resolve(m, -1, t) == V{1});
}

TEST_CASE("disabled APICs: hardware-disabled match nothing") {
  std::vector<ApicRoutingEntry> t = {Xapic(0, 1, kDfrFlat),
                                     Xapic(1, 2, kDfrFlat)};
  t[1].hw_enabled = false;
  CHECK(Resolve(Msg(1, false), 0, t).empty());
  CHECK(Resolve(Msg(0xff, false), 0, t) == V{0});
  CHECK(Resolve(Msg(0, false, Shorthand::kAllIncludingSelf), 0, t) == V{0});
  // Software-disabled ones are still addressed (they take NMI/INIT/SIPI).
  t[1].hw_enabled = true;
  t[1].sw_enabled = false;
  CHECK(Resolve(Msg(1, false), 0, t) == V{1});
}

TEST_CASE("lowest priority: one destination, the lowest TPR, ties by vector") {
  std::vector<ApicRoutingEntry> t = {
      Xapic(0, 0x01, kDfrFlat), Xapic(1, 0x02, kDfrFlat),
      Xapic(2, 0x04, kDfrFlat), Xapic(3, 0x08, kDfrFlat)};
  t[0].tpr = 0x20;
  t[1].tpr = 0x10;
  t[2].tpr = 0x10;
  t[3].tpr = 0x00;
  ApicMessage m = Msg(0x07, true, Shorthand::kNone, false,
                      DeliveryMode::kLowestPriority);  // APICs 0, 1, 2
  m.vector = 0x40;  // ties between 1 and 2: 0x40 % 2 = 0 -> the first
  CHECK(Resolve(m, 3, t) == V{1});
  m.vector = 0x41;
  CHECK(Resolve(m, 3, t) == V{2});
  m.destination = 0x0f;  // APIC 3 (TPR 0) joins
  CHECK(Resolve(m, 0, t) == V{3});
  // A software-disabled APIC is passed over when another can take it.
  t[3].sw_enabled = false;
  CHECK(Resolve(m, 0, t) == V{2});
  // One match: no arbitration.
  m.destination = 0x01;
  CHECK(Resolve(m, 0, t) == V{0});
  // Fixed mode with the same destination reaches all of them.
  m.mode = DeliveryMode::kFixed;
  m.destination = 0x0f;
  CHECK(Resolve(m, 0, t) == V{0, 1, 2, 3});
}

TEST_CASE("DeliveryOf keeps vector, mode and trigger") {
  ApicMessage m = Msg(1, false, Shorthand::kNone, false, DeliveryMode::kNmi);
  m.level_triggered = true;
  ApicDelivery d = DeliveryOf(m);
  CHECK(d.mode == DeliveryMode::kNmi);
  CHECK(d.level_triggered);
  CHECK(d.vector == 0x40);
  CHECK(std::string(DeliveryModeName(DeliveryMode::kStartup)) == "SIPI");
}

}  // namespace
}  // namespace ssihv::kvm
