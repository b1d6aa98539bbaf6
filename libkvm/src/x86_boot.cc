#include "ssihv/kvm/x86_boot.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/status_macros.h"

namespace ssihv::kvm {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t k2MiB = uint64_t{2} << 20;
constexpr uint64_t k4GiB = uint64_t{4} << 30;
constexpr uint64_t kMiB = uint64_t{1} << 20;

// Page-table entry bits.
constexpr uint64_t kPtePresent = 1 << 0;
constexpr uint64_t kPteWritable = 1 << 1;
constexpr uint64_t kPteLargePage = 1 << 7;

// Flat descriptors (Intel SDM vol. 3, 3.4.5): base 0, limit 4 GiB, G=1.
constexpr uint64_t kGdtCode64 = 0x00af9b000000ffff;  // P DPL0 S exec/read, L=1
constexpr uint64_t kGdtData = 0x00cf93000000ffff;    // P DPL0 S read/write, D=1
constexpr uint64_t kGdtTss = 0x00008b0000000067;     // P busy 64-bit TSS

std::string MiB(uint64_t bytes) { return absl::StrCat(bytes / kMiB, " MiB"); }

uint64_t AlignDown(uint64_t v, uint64_t a) { return v & ~(a - 1); }

// Cuts [c.addr, c.end()) out of every entry and inserts `c`.
void Carve(std::vector<E820Entry>* map, const E820Entry& c) {
  std::vector<E820Entry> out;
  for (const E820Entry& e : *map) {
    if (c.end() <= e.addr || e.end() <= c.addr) {
      out.push_back(e);
      continue;
    }
    if (e.addr < c.addr) out.push_back({e.addr, c.addr - e.addr, e.type});
    if (c.end() < e.end()) out.push_back({c.end(), e.end() - c.end(), e.type});
  }
  out.push_back(c);
  std::sort(out.begin(), out.end(), [](const E820Entry& a, const E820Entry& b) {
    return a.addr < b.addr;
  });
  *map = std::move(out);
}

}  // namespace

absl::StatusOr<std::vector<E820Entry>> BuildE820(
    const cluster::GuestLayout& layout, const std::vector<E820Entry>& carve) {
  // Node ranges that touch (same side of the hole) are one stretch of RAM.
  std::vector<E820Entry> ram;
  for (const cluster::GpaRange& r : layout.ranges()) {
    if (!ram.empty() && ram.back().end() == r.gpa) {
      ram.back().size += r.size;
    } else {
      ram.push_back({r.gpa, r.size, E820Type::kRam});
    }
  }
  if (ram.empty() || ram.front().addr != 0 ||
      ram.front().end() <= kHighMemoryStart) {
    return absl::InvalidArgumentError(absl::StrCat(
        "guest layout: RAM must start at 0 and extend past 1 MiB (has ",
        MiB(layout.ram_bytes()), ")"));
  }
  std::vector<E820Entry> map;
  map.push_back({0, kEbdaStart, E820Type::kRam});
  map.push_back({kEbdaStart, kVgaHoleStart - kEbdaStart, E820Type::kReserved});
  map.push_back({kBiosWindowStart, kHighMemoryStart - kBiosWindowStart,
                 E820Type::kReserved});
  map.push_back(
      {kHighMemoryStart, ram.front().end() - kHighMemoryStart, E820Type::kRam});
  map.insert(map.end(), ram.begin() + 1, ram.end());
  for (const E820Entry& c : carve) Carve(&map, c);
  if (map.size() > E820_MAX_ENTRIES_ZEROPAGE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "e820 map has ", map.size(), " entries; boot_params holds ",
        E820_MAX_ENTRIES_ZEROPAGE));
  }
  return map;
}

absl::StatusOr<uint64_t> PlaceInitrd(const std::vector<E820Entry>& e820,
                                     uint64_t size, uint64_t low,
                                     uint64_t limit) {
  const uint64_t need = (size + kPage - 1) & ~(kPage - 1);
  uint64_t best = 0;
  bool found = false;
  for (const E820Entry& e : e820) {
    if (e.type != E820Type::kRam) continue;
    uint64_t top = AlignDown(std::min(e.end(), limit), kPage);
    uint64_t bottom = std::max(e.addr, low);
    if (top < need || top - need < bottom) continue;
    uint64_t addr = top - need;
    if (!found || addr > best) best = addr;
    found = true;
  }
  if (!found) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too little memory: no RAM for the ", MiB(size + kMiB - 1),
                     " initrd between the kernel's end (", MiB(low),
                     ") and its initrd limit (", MiB(limit),
                     "); give node 0 more memory_mib"));
  }
  return best;
}

boot_params MakeBootParams(const BzImage& image, const LinuxBootSpec& spec,
                           uint64_t initrd_addr, uint64_t cmdline_addr) {
  // A clean zero page with only the image's setup header copied in, as the
  // protocol asks (the sentinel at 0x1ef stays 0).
  boot_params bp;
  std::memset(&bp, 0, sizeof(bp));
  std::memcpy(&bp.hdr, &image.header, image.header_length);
  setup_header& h = bp.hdr;
  h.type_of_loader = 0xff;  // "undefined" boot loader
  h.loadflags |= CAN_USE_HEAP;
  h.heap_end_ptr = 0xfe00;
  h.code32_start = static_cast<uint32_t>(image.load_address);
  h.cmd_line_ptr = static_cast<uint32_t>(cmdline_addr);
  bp.ext_cmd_line_ptr = static_cast<uint32_t>(cmdline_addr >> 32);
  if (!spec.initrd.empty()) {
    h.ramdisk_image = static_cast<uint32_t>(initrd_addr);
    h.ramdisk_size = static_cast<uint32_t>(spec.initrd.size());
    bp.ext_ramdisk_image = static_cast<uint32_t>(initrd_addr >> 32);
    bp.ext_ramdisk_size = static_cast<uint32_t>(spec.initrd.size() >> 32);
  }
  bp.acpi_rsdp_addr = spec.acpi_rsdp_addr;
  const size_t n =
      std::min<size_t>(spec.e820.size(), E820_MAX_ENTRIES_ZEROPAGE);
  bp.e820_entries = static_cast<uint8_t>(n);
  for (size_t i = 0; i < n; ++i) {
    bp.e820_table[i].addr = spec.e820[i].addr;
    bp.e820_table[i].size = spec.e820[i].size;
    bp.e820_table[i].type = static_cast<uint32_t>(spec.e820[i].type);
  }
  return bp;
}

absl::Status WriteIdentityPageTables(const GuestMemory& memory, uint64_t pml4) {
  const uint64_t pdpt = pml4 + kPage;
  const uint64_t pd = pdpt + kPage;
  SSIHV_RETURN_IF_ERROR(
      memory.WriteObject<uint64_t>(pml4, pdpt | kPtePresent | kPteWritable));
  for (uint64_t i = 1; i < 512; ++i) {
    SSIHV_RETURN_IF_ERROR(memory.WriteObject<uint64_t>(pml4 + i * 8, 0));
  }
  for (uint64_t i = 0; i < 512; ++i) {
    uint64_t entry = i < 4 ? (pd + i * kPage) | kPtePresent | kPteWritable : 0;
    SSIHV_RETURN_IF_ERROR(memory.WriteObject<uint64_t>(pdpt + i * 8, entry));
  }
  for (uint64_t i = 0; i < 4 * 512; ++i) {
    uint64_t entry = (i * k2MiB) | kPtePresent | kPteWritable | kPteLargePage;
    SSIHV_RETURN_IF_ERROR(memory.WriteObject<uint64_t>(pd + i * 8, entry));
  }
  return absl::OkStatus();
}

absl::Status WriteResetVectorStub(const GuestMemory& memory) {
  const uint8_t stub[] = {
      0xb0, 0xfe,  // mov al, 0xfe
      0xe6, 0x64,  // out 0x64, al   (i8042: pulse the reset line)
      0xf4,        // hlt
      0xeb, 0xfd,  // jmp hlt
  };
  return memory.Write(kResetVector, stub);
}

absl::StatusOr<uint16_t> WriteBootGdt(const GuestMemory& memory,
                                      uint64_t addr) {
  const uint64_t gdt[] = {0, 0, kGdtCode64, kGdtData, kGdtTss, 0};
  static_assert(kBootCsSelector == 2 * 8 && kBootDsSelector == 3 * 8 &&
                kBootTssSelector == 4 * 8);
  SSIHV_RETURN_IF_ERROR(memory.WriteObject(addr, gdt));
  return static_cast<uint16_t>(sizeof(gdt) - 1);
}

absl::StatusOr<LinuxBootInfo> LoadLinux(const GuestMemory& memory,
                                        const LinuxBootSpec& spec) {
  SSIHV_ASSIGN_OR_RETURN(BzImage image, ParseBzImage(spec.kernel_image));
  if (spec.cmdline.find('\0') != std::string::npos ||
      spec.cmdline.size() > image.cmdline_max ||
      spec.cmdline.size() + 1 > kCmdlineMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel command line: ", spec.cmdline.size(),
                     " bytes; this kernel accepts at most ",
                     std::min<uint64_t>(image.cmdline_max, kCmdlineMax - 1),
                     " (and no NUL bytes)"));
  }
  LinuxBootInfo info;
  info.protocol = image.protocol;
  info.entry = image.entry64();
  info.kernel_addr = image.load_address;
  info.kernel_end = image.load_address + image.init_size;
  // The kernel decompresses itself inside [load, load + init_size): that
  // window must be RAM the e820 map gives it.
  bool window_ok = false;
  for (const E820Entry& e : spec.e820) {
    window_ok |= e.type == E820Type::kRam && e.addr <= info.kernel_addr &&
                 info.kernel_end <= e.end();
  }
  if (!window_ok || !memory.Contains(info.kernel_addr, image.init_size)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too little memory: the kernel needs RAM from ", MiB(info.kernel_addr),
        " to ", MiB(info.kernel_end + kMiB - 1),
        " to decompress; give node 0 more memory_mib"));
  }
  if (!spec.initrd.empty()) {
    uint64_t limit = std::min<uint64_t>(image.initrd_addr_max + 1ull, k4GiB);
    SSIHV_ASSIGN_OR_RETURN(
        info.initrd_addr,
        PlaceInitrd(spec.e820, spec.initrd.size(), info.kernel_end, limit));
    info.initrd_size = spec.initrd.size();
    SSIHV_RETURN_IF_ERROR(memory.Write(info.initrd_addr, spec.initrd));
  }
  SSIHV_RETURN_IF_ERROR(memory.Write(info.kernel_addr, image.kernel));
  std::vector<uint8_t> cmdline(spec.cmdline.begin(), spec.cmdline.end());
  cmdline.push_back(0);
  SSIHV_RETURN_IF_ERROR(memory.Write(info.cmdline_addr, cmdline));
  boot_params bp =
      MakeBootParams(image, spec, info.initrd_addr, info.cmdline_addr);
  if (spec.e820.size() > E820_MAX_ENTRIES_ZEROPAGE) {
    return absl::InvalidArgumentError("e820 map longer than boot_params holds");
  }
  SSIHV_RETURN_IF_ERROR(memory.WriteObject(info.boot_params, bp));
  SSIHV_RETURN_IF_ERROR(WriteIdentityPageTables(memory, info.page_tables));
  SSIHV_ASSIGN_OR_RETURN(uint16_t limit, WriteBootGdt(memory, info.gdt));
  info.gdt_limit = limit;
  SSIHV_RETURN_IF_ERROR(WriteResetVectorStub(memory));
  return info;
}

}  // namespace ssihv::kvm
