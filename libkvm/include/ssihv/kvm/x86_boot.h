// x86 direct boot of a Linux bzImage (64-bit boot protocol): the e820 map of
// the cluster's guest layout, boot_params, command line, initrd placement,
// identity page tables and a flat GDT. Everything here writes guest memory
// through GuestMemory and needs no KVM; x86_vcpu.h sets up the registers.
#ifndef SSIHV_KVM_X86_BOOT_H_
#define SSIHV_KVM_X86_BOOT_H_

#include <asm/bootparam.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ssihv/cluster/layout.h"
#include "ssihv/kvm/bzimage.h"
#include "ssihv/kvm/guest_memory.h"

namespace ssihv::kvm {

// Guest-physical addresses of the boot structures. All but the BIOS window
// are ordinary RAM below 640 KiB that Linux reclaims once it has copied
// boot_params and the command line.
inline constexpr uint64_t kGdtAddr = 0x500;
inline constexpr uint64_t kBootParamsAddr = 0x7000;
inline constexpr uint64_t kBootStackTop = 0x8ff0;
inline constexpr uint64_t kPml4Addr = 0x9000;  // then PDPT, then 4 PDs
inline constexpr uint64_t kPageTablesEnd = 0xf000;
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;  // bytes incl. the NUL
// The legacy area below 1 MiB.
inline constexpr uint64_t kEbdaStart = 0x9fc00;
inline constexpr uint64_t kVgaHoleStart = 0xa0000;
inline constexpr uint64_t kBiosWindowStart = 0xe0000;  // RSDP lives here
inline constexpr uint64_t kHighMemoryStart = 0x100000;
// The x86 reset vector (f000:fff0): a real-mode reset stub lives here.
inline constexpr uint64_t kResetVector = 0xffff0;

// GDT selectors the 64-bit boot protocol asks for (__BOOT_CS, __BOOT_DS).
inline constexpr uint16_t kBootCsSelector = 0x10;
inline constexpr uint16_t kBootDsSelector = 0x18;
inline constexpr uint16_t kBootTssSelector = 0x20;

enum class E820Type : uint32_t {
  kRam = 1,
  kReserved = 2,
  kAcpi = 3,  // ACPI tables, reclaimable after the OS parsed them
  kNvs = 4,
};

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  E820Type type = E820Type::kRam;

  uint64_t end() const { return addr + size; }
  bool operator==(const E820Entry&) const = default;
};

/// The e820 map of a guest layout: its RAM ranges (adjacent ones merged)
/// with the legacy area cut out of the first: RAM [0, 0x9fc00), reserved
/// EBDA [0x9fc00, 0xa0000), nothing for VGA [0xa0000, 0xe0000), reserved
/// BIOS window [0xe0000, 0x100000), RAM from 1 MiB on. Each of `carve`
/// (e.g. ACPI tables placed in RAM) replaces the RAM it overlaps.
/// InvalidArgument if the first range is too small to hold the legacy area.
absl::StatusOr<std::vector<E820Entry>> BuildE820(
    const cluster::GuestLayout& layout,
    const std::vector<E820Entry>& carve = {});

struct LinuxBootSpec {
  absl::Span<const uint8_t> kernel_image;  // a bzImage
  absl::Span<const uint8_t> initrd;        // may be empty
  std::string cmdline;
  std::vector<E820Entry> e820;
  /// boot_params.acpi_rsdp_addr; 0 lets the guest scan 0xe0000-0xfffff.
  uint64_t acpi_rsdp_addr = 0;
};

/// Where LoadLinux put things.
struct LinuxBootInfo {
  uint64_t entry = 0;                      // 64-bit entry point (rip)
  uint64_t boot_params = kBootParamsAddr;  // rsi
  uint64_t kernel_addr = 0;
  uint64_t kernel_end = 0;  // kernel_addr + init_size
  uint64_t initrd_addr = 0;
  uint64_t initrd_size = 0;
  uint64_t cmdline_addr = kCmdlineAddr;
  uint64_t page_tables = kPml4Addr;  // cr3
  uint64_t gdt = kGdtAddr;
  uint64_t gdt_limit = 0;
  uint16_t protocol = 0;
};

/// Validates the image and writes kernel, initrd, command line, boot_params,
/// page tables, GDT and the reset-vector stub into `memory`. Errors name what
/// does not fit: a bad image, a command line longer than the kernel accepts, or
/// too little RAM for the kernel's decompression window or the initrd.
absl::StatusOr<LinuxBootInfo> LoadLinux(const GuestMemory& memory,
                                        const LinuxBootSpec& spec);

/// The highest page-aligned place for an initrd of `size` bytes inside an
/// e820 RAM entry, above `low` and ending at or below `limit` (exclusive).
absl::StatusOr<uint64_t> PlaceInitrd(const std::vector<E820Entry>& e820,
                                     uint64_t size, uint64_t low,
                                     uint64_t limit);

/// boot_params for `image` (pure; LoadLinux writes it at kBootParamsAddr).
boot_params MakeBootParams(const BzImage& image, const LinuxBootSpec& spec,
                           uint64_t initrd_addr, uint64_t cmdline_addr);

/// Identity-maps the first 4 GiB with 2 MiB pages: PML4 at `pml4`, the PDPT
/// on the next page, then four page directories (6 pages in all).
absl::Status WriteIdentityPageTables(const GuestMemory& memory, uint64_t pml4);

/// A real-mode stub at the reset vector that pulses the i8042 reset line
/// (0xfe to port 0x64) and halts. Linux's last-resort reboot jumps to
/// f000:fff0 as into a BIOS (BOOT_BIOS: the default on an ACPI
/// hardware-reduced machine without EFI), so a reboot always reaches the
/// VMM as a reset.
absl::Status WriteResetVectorStub(const GuestMemory& memory);

/// A flat GDT at `addr`: null, null, 64-bit code (0x10), data (0x18), TSS
/// (0x20). Returns its limit (size - 1).
absl::StatusOr<uint16_t> WriteBootGdt(const GuestMemory& memory, uint64_t addr);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_X86_BOOT_H_
