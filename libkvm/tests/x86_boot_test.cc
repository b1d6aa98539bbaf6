#include "ssihv/kvm/x86_boot.h"

#include <catch2/catch.hpp>
#include <cstring>

#include "fake_bzimage.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/cluster/config.h"
#include "ssihv/kvm/x86_vcpu.h"

namespace ssihv::kvm {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

cluster::GuestLayout LayoutOf(const std::string& json) {
  absl::StatusOr<cluster::ClusterConfig> c = cluster::ParseClusterConfig(json);
  REQUIRE(c.ok());
  return cluster::GuestLayout(*c);
}

std::string Nodes(std::initializer_list<int> mibs) {
  std::string out = R"({"nodes": [)";
  int id = 0;
  for (int m : mibs) {
    if (id > 0) out += ",";
    out += R"({"id": )" + std::to_string(id++) +
           R"(, "vcpus": 1, "memory_mib": )" + std::to_string(m) + "}";
  }
  return out + "]}";
}

// A guest RAM of `size` bytes at GPA 0 for the pure loader tests.
struct TestRam {
  explicit TestRam(uint64_t size) {
    auto r = base::MappedRegion::Anonymous(size);
    REQUIRE(r.ok());
    region = *std::move(r);
    REQUIRE(memory.AddRegion({0, size, region.data()}).ok());
  }
  base::MappedRegion region;
  GuestMemory memory;
};

TEST_CASE("e820 of the default 2-node cluster: legacy holes, then RAM") {
  auto e820 = BuildE820(cluster::GuestLayout(cluster::DefaultClusterConfig()));
  REQUIRE(e820.ok());
  std::vector<E820Entry> want = {
      {0, 0x9fc00, E820Type::kRam},
      {0x9fc00, 0x400, E820Type::kReserved},
      {0xe0000, 0x20000, E820Type::kReserved},
      {0x100000, 2 * kGiB - 0x100000, E820Type::kRam},
  };
  CHECK(*e820 == want);
}

TEST_CASE("e820 follows the 3 GiB hole and merges node ranges") {
  // 3 x 1536 MiB: node 1 ends exactly at the hole, node 2 starts at 4 GiB.
  auto e820 = BuildE820(LayoutOf(Nodes({1536, 1536, 1536})));
  REQUIRE(e820.ok());
  REQUIRE(e820->size() == 5);
  CHECK((*e820)[3] == E820Entry{0x100000, 3 * kGiB - 0x100000, E820Type::kRam});
  CHECK((*e820)[4] == E820Entry{4 * kGiB, 1536 * kMiB, E820Type::kRam});
  // A node split by the hole: 2 x 2 GiB.
  auto split = BuildE820(LayoutOf(Nodes({2048, 2048})));
  REQUIRE(split.ok());
  CHECK(split->back() == E820Entry{4 * kGiB, 1 * kGiB, E820Type::kRam});
  CHECK((*split)[3].end() == 3 * kGiB);
  for (const E820Entry& e : *split) {
    CHECK((e.end() <= 3 * kGiB || e.addr >= 4 * kGiB));
  }
}

TEST_CASE("e820 carves ACPI tables out of RAM") {
  E820Entry acpi{0x7ff00000, 0x10000, E820Type::kAcpi};
  auto e820 =
      BuildE820(cluster::GuestLayout(cluster::DefaultClusterConfig()), {acpi});
  REQUIRE(e820.ok());
  REQUIRE(e820->size() == 6);
  CHECK((*e820)[3] ==
        E820Entry{0x100000, 0x7ff00000 - 0x100000, E820Type::kRam});
  CHECK((*e820)[4] == acpi);
  CHECK((*e820)[5] ==
        E820Entry{0x7ff10000, 2 * kGiB - 0x7ff10000, E820Type::kRam});
  // At the very end of RAM nothing is left behind it.
  E820Entry tail{2 * kGiB - 0x10000, 0x10000, E820Type::kAcpi};
  auto e2 =
      BuildE820(cluster::GuestLayout(cluster::DefaultClusterConfig()), {tail});
  REQUIRE(e2.ok());
  CHECK(e2->back() == tail);
  CHECK((*e2)[3].end() == tail.addr);
}

TEST_CASE("the initrd goes as high as allowed, page aligned") {
  std::vector<E820Entry> e820 = {{0, 0x9fc00, E820Type::kRam},
                                 {0x100000, 255 * kMiB, E820Type::kRam}};
  auto addr = PlaceInitrd(e820, 5000, 20 * kMiB, 4 * kGiB);
  REQUIRE(addr.ok());
  CHECK(*addr == 256 * kMiB - 8192);
  // The limit (initrd_addr_max + 1) wins over the end of RAM.
  addr = PlaceInitrd(e820, 4096, 20 * kMiB, 100 * kMiB + 100);
  REQUIRE(addr.ok());
  CHECK(*addr == 100 * kMiB - 4096);
  // Nothing fits above the kernel: a clear "too little memory".
  auto none = PlaceInitrd(e820, 300 * kMiB, 20 * kMiB, 4 * kGiB);
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(std::string(none.status().message()),
             Catch::Contains("too little memory"));
}

// boot_params is packed: its fields are compared as values (unary +), never
// bound to references (UBSan: misaligned reference binding).
TEST_CASE("boot_params carries the header, command line, initrd, e820, RSDP") {
  std::vector<uint8_t> image = testing::MakeFakeBzImage();
  auto bz = ParseBzImage(image);
  REQUIRE(bz.ok());
  LinuxBootSpec spec;
  std::vector<uint8_t> initrd(12345, 1);
  spec.initrd = initrd;
  spec.e820 = {{0, 0x9fc00, E820Type::kRam}, {0x100000, kGiB, E820Type::kRam}};
  spec.acpi_rsdp_addr = 0xe0000;
  boot_params bp = MakeBootParams(*bz, spec, 0x5000000, 0x20000);
  CHECK(+bp.hdr.header == 0x53726448);
  CHECK(+bp.hdr.version == 0x020f);
  CHECK(+bp.hdr.type_of_loader == 0xff);
  CHECK((bp.hdr.loadflags & CAN_USE_HEAP));
  CHECK(+bp.hdr.cmd_line_ptr == 0x20000);
  CHECK(+bp.ext_cmd_line_ptr == 0);
  CHECK(+bp.hdr.ramdisk_image == 0x5000000);
  CHECK(+bp.hdr.ramdisk_size == 12345);
  CHECK(+bp.acpi_rsdp_addr == 0xe0000);
  CHECK(+bp.sentinel == 0);
  REQUIRE(bp.e820_entries == 2);
  CHECK(+bp.e820_table[1].addr == 0x100000);
  CHECK(+bp.e820_table[1].size == kGiB);
  CHECK(+bp.e820_table[1].type == 1);
  // Offsets the kernel reads (Documentation/arch/x86/zero-page.rst).
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(&bp);
  CHECK(raw[0x1e8] == 2);
  uint32_t cmdline;
  std::memcpy(&cmdline, raw + 0x228, 4);
  CHECK(cmdline == 0x20000);
  uint64_t rsdp;
  std::memcpy(&rsdp, raw + 0x70, 8);
  CHECK(rsdp == 0xe0000);
}

uint64_t Read64(const GuestMemory& m, uint64_t gpa) {
  auto v = m.ReadObject<uint64_t>(gpa);
  REQUIRE(v.ok());
  return *v;
}

// Walks the 4-level tables like the MMU does, for 2 MiB pages.
uint64_t Translate(const GuestMemory& m, uint64_t pml4, uint64_t va) {
  uint64_t e4 = Read64(m, pml4 + ((va >> 39) & 511) * 8);
  REQUIRE((e4 & 1));
  uint64_t e3 = Read64(m, (e4 & ~0xfffull) + ((va >> 30) & 511) * 8);
  REQUIRE((e3 & 1));
  uint64_t e2 = Read64(m, (e3 & ~0xfffull) + ((va >> 21) & 511) * 8);
  REQUIRE((e2 & 0x83) == 0x83);  // present, writable, 2 MiB page
  return (e2 & ~0x1fffffull) + (va & 0x1fffff);
}

TEST_CASE("identity page tables map the first 4 GiB with 2 MiB pages") {
  TestRam ram(1 * kMiB);
  REQUIRE(WriteIdentityPageTables(ram.memory, kPml4Addr).ok());
  for (uint64_t va : {0ull, 0x1000200ull, 0x7fffffffull, 0xbffff123ull,
                      0xfee00000ull, 0xffffffffull}) {
    CHECK(Translate(ram.memory, kPml4Addr, va) == va);
  }
  // Nothing above 4 GiB, and the tables end where the layout says.
  CHECK(Read64(ram.memory, kPml4Addr + 4096 + 4 * 8) == 0);
  CHECK(kPml4Addr + 6 * 4096 == kPageTablesEnd);
}

TEST_CASE("LoadLinux places kernel, command line, initrd and boot_params") {
  TestRam ram(64 * kMiB);
  testing::FakeBzImageOptions o;
  o.payload.assign(0x800, 0);
  o.payload[0x200] = 0xf4;  // hlt at the 64-bit entry
  std::vector<uint8_t> image = testing::MakeFakeBzImage(o);
  std::vector<uint8_t> initrd(3 * 4096 + 5, 0xab);
  LinuxBootSpec spec;
  spec.kernel_image = image;
  spec.initrd = initrd;
  spec.cmdline = "console=ttyS0 quiet";
  spec.e820 = {{0, 0x9fc00, E820Type::kRam},
               {0x100000, 63 * kMiB, E820Type::kRam}};
  auto info = LoadLinux(ram.memory, spec);
  REQUIRE(info.ok());
  CHECK(info->entry == 0x1000200);
  CHECK(info->kernel_end == 0x1400000);
  CHECK(info->initrd_addr == 64 * kMiB - 4 * 4096);
  CHECK(ram.region.data()[0x1000200] == 0xf4);
  CHECK(ram.region.data()[info->initrd_addr + initrd.size() - 1] == 0xab);
  CHECK(std::string(reinterpret_cast<char*>(ram.region.data() +
                                            kCmdlineAddr)) == spec.cmdline);
  auto bp = ram.memory.ReadObject<boot_params>(kBootParamsAddr);
  REQUIRE(bp.ok());
  CHECK(+bp->hdr.ramdisk_image == info->initrd_addr);
  CHECK(+bp->hdr.ramdisk_size == initrd.size());
  CHECK(+bp->e820_entries == 2);
  // The GDT holds the boot protocol's flat code and data segments.
  CHECK(Read64(ram.memory, kGdtAddr + kBootCsSelector) ==
        0x00af9b000000ffffull);
  CHECK(Read64(ram.memory, kGdtAddr + kBootDsSelector) ==
        0x00cf93000000ffffull);
  CHECK(info->gdt_limit == 6 * 8 - 1);
  // The reset-vector stub: mov al, 0xfe; out 0x64, al; hlt.
  const uint8_t* stub = ram.region.data() + kResetVector;
  CHECK(std::vector<uint8_t>(stub, stub + 5) ==
        std::vector<uint8_t>{0xb0, 0xfe, 0xe6, 0x64, 0xf4});
}

TEST_CASE("LoadLinux refuses what cannot boot, saying why") {
  TestRam ram(64 * kMiB);
  std::vector<uint8_t> image = testing::MakeFakeBzImage();
  LinuxBootSpec spec;
  spec.kernel_image = image;
  spec.e820 = {{0, 0x9fc00, E820Type::kRam},
               {0x100000, 63 * kMiB, E820Type::kRam}};

  SECTION("command line too long") {
    spec.cmdline = std::string(2048, 'x');
    auto r = LoadLinux(ram.memory, spec);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(std::string(r.status().message()),
               Catch::Contains("at most 2047"));
  }
  SECTION("RAM ends inside the kernel's decompression window") {
    spec.e820.back().size = 18 * kMiB;
    auto r = LoadLinux(ram.memory, spec);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
    CHECK_THAT(std::string(r.status().message()),
               Catch::Contains("too little memory"));
  }
  SECTION("initrd larger than the RAM above the kernel") {
    std::vector<uint8_t> initrd(60 * kMiB, 1);
    spec.initrd = initrd;
    auto r = LoadLinux(ram.memory, spec);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(
        std::string(r.status().message()),
        Catch::Contains("too little memory") && Catch::Contains("initrd"));
  }
  SECTION("not a kernel") {
    std::vector<uint8_t> junk(100000, 0x7f);
    spec.kernel_image = junk;
    auto r = LoadLinux(ram.memory, spec);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(std::string(r.status().message()), Catch::Contains("bzImage"));
  }
}

TEST_CASE("long-mode entry registers follow the 64-bit boot protocol") {
  LinuxBootInfo info;
  info.entry = 0x1000200;
  info.gdt = kGdtAddr;
  info.gdt_limit = 47;
  kvm_sregs reset{};
  reset.cr0 = 0x60000010;  // KVM's reset value: CD | NW | ET
  kvm_sregs s = LongModeSregs(reset, info);
  CHECK(s.cr0 == 0x80000011);
  CHECK(s.cr3 == kPml4Addr);
  CHECK((s.cr4 & 0x20));
  CHECK((s.efer & 0x500) == 0x500);
  CHECK(s.cs.selector == kBootCsSelector);
  CHECK(s.cs.l == 1);
  CHECK(s.cs.db == 0);
  CHECK(s.ds.selector == kBootDsSelector);
  CHECK(s.ss.selector == kBootDsSelector);
  CHECK(s.tr.type == 0xb);
  CHECK(s.gdt.base == kGdtAddr);
  CHECK(s.gdt.limit == 47);
  kvm_regs r = LongModeBootRegs(info);
  CHECK(r.rip == 0x1000200);
  CHECK(r.rsi == kBootParamsAddr);
  CHECK(r.rflags == 2);
}

TEST_CASE("initial MSRs and LAPIC virtual wire") {
  bool mtrr = false;
  for (const Msr& m : InitialMsrs()) {
    if (m.index == kMsrMtrrDefType) mtrr = m.value == 0x806;
  }
  CHECK(mtrr);
  kvm_lapic_state lapic{};
  uint32_t masked = 0x10000 | 0x700;  // masked, with junk delivery mode
  std::memcpy(lapic.regs + 0x350, &masked, 4);
  SetLintVirtualWire(&lapic);
  uint32_t lint0, lint1;
  std::memcpy(&lint0, lapic.regs + 0x350, 4);
  std::memcpy(&lint1, lapic.regs + 0x360, 4);
  CHECK((lint0 & 0x700) == 0x700);      // ExtINT
  CHECK((lint0 & 0x10000) == 0x10000);  // mask bit untouched
  CHECK((lint1 & 0x700) == 0x400);      // NMI
}

}  // namespace
}  // namespace ssihv::kvm
