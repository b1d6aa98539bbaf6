// Parsing and validation of a Linux x86 bzImage setup header
// (Documentation/arch/x86/boot.rst, "THE REAL-MODE KERNEL HEADER").
#ifndef SSIHV_KVM_BZIMAGE_H_
#define SSIHV_KVM_BZIMAGE_H_

#include <asm/bootparam.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ssihv::kvm {

/// Oldest boot protocol accepted: 2.12 introduced xloadflags, which is how a
/// kernel says it has the 64-bit entry point this loader uses.
inline constexpr uint16_t kMinBootProtocol = 0x020c;

/// A validated bzImage. Spans point into the caller's image bytes.
struct BzImage {
  /// The setup header as found in the image (boot_params.hdr starts as it).
  setup_header header{};
  /// Bytes of the setup header proper: from 0x1f1 to 0x202 + jump offset.
  size_t header_length = 0;
  uint16_t protocol = 0;  // e.g. 0x020f for 2.15
  /// The 32/64-bit kernel that gets loaded at `load_address`.
  absl::Span<const uint8_t> kernel;
  /// Where the kernel goes: pref_address (2.10+), aligned as the kernel asks.
  uint64_t load_address = 0;
  /// Memory the kernel needs from load_address on while it decompresses.
  uint64_t init_size = 0;
  uint32_t kernel_alignment = 0;
  uint64_t initrd_addr_max = 0;
  /// Longest command line (without the NUL) the kernel accepts.
  uint32_t cmdline_max = 0;
  bool can_load_above_4g = false;

  /// The 64-bit entry point: load address + 0x200.
  uint64_t entry64() const { return load_address + 0x200; }
};

/// Validates `image` (magic 0xAA55 and "HdrS", protocol >= 2.12, a
/// relocatable kernel with the 64-bit entry point, a payload as long as the
/// header says) and returns its layout. InvalidArgument names the field,
/// e.g. "bzImage: truncated: header says 6123 KiB of kernel, file has 100".
absl::StatusOr<BzImage> ParseBzImage(absl::Span<const uint8_t> image);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_BZIMAGE_H_
