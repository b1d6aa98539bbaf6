#include "ssihv/kvm/bzimage.h"

#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ssihv::kvm {
namespace {

// Offsets in the image (boot.rst).
constexpr size_t kHeaderOffset = 0x1f1;
constexpr size_t kBootFlagOffset = 0x1fe;
constexpr size_t kJumpOffset = 0x200;
constexpr size_t kMagicOffset = 0x202;
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
constexpr size_t kSectorSize = 512;

static_assert(offsetof(boot_params, hdr) == kHeaderOffset);
static_assert(offsetof(setup_header, boot_flag) ==
              kBootFlagOffset - kHeaderOffset);
static_assert(offsetof(setup_header, header) == kMagicOffset - kHeaderOffset);
static_assert(offsetof(setup_header, init_size) == 0x260 - kHeaderOffset);
static_assert(sizeof(boot_params) == 4096);

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("bzImage: ", what));
}

std::string Version(uint16_t v) {
  return absl::StrFormat("%d.%02d", v >> 8, v & 0xff);
}

}  // namespace

absl::StatusOr<BzImage> ParseBzImage(absl::Span<const uint8_t> image) {
  if (image.size() < kHeaderOffset + sizeof(setup_header)) {
    return Bad(absl::StrCat("truncated: ", image.size(),
                            " bytes is shorter than the setup header"));
  }
  BzImage out;
  std::memcpy(&out.header, image.data() + kHeaderOffset, sizeof(setup_header));
  const setup_header& h = out.header;
  if (h.boot_flag != kBootFlag) {
    return Bad(absl::StrFormat(
        "boot_flag is 0x%04x, not 0xaa55: not a Linux kernel image",
        static_cast<unsigned>(h.boot_flag)));  // packed: pass a copy
  }
  if (h.header != kHdrSMagic) {
    return Bad(
        "no \"HdrS\" magic at 0x202: not a bzImage (a vmlinux ELF or "
        "a pre-2.00 zImage?)");
  }
  out.protocol = h.version;
  if (h.version < kMinBootProtocol) {
    return Bad(absl::StrCat("boot protocol ", Version(h.version),
                            " is older than 2.12 (no 64-bit entry point)"));
  }
  // The header runs from 0x1f1 to the jump target (0x202 + jump offset).
  out.header_length = kMagicOffset + image[kJumpOffset + 1] - kHeaderOffset;
  if (out.header_length < offsetof(setup_header, init_size) + 4) {
    return Bad(
        absl::StrCat("corrupt: setup header length ", out.header_length));
  }
  // Fields newer than this build's struct stay in the image, unused.
  out.header_length = std::min(out.header_length, sizeof(setup_header));
  if (!(h.loadflags & LOADED_HIGH)) {
    return Bad(
        "loadflags.LOADED_HIGH is clear: a zImage loaded at 0x10000 is "
        "not supported");
  }
  if (!(h.xloadflags & XLF_KERNEL_64)) {
    return Bad(
        "xloadflags.XLF_KERNEL_64 is clear: the kernel has no 64-bit "
        "entry point (a 32-bit kernel?)");
  }
  if (!h.relocatable_kernel) {
    return Bad("relocatable_kernel is 0: only relocatable kernels are loaded");
  }
  if (h.kernel_alignment < 4096 || !std::has_single_bit(h.kernel_alignment)) {
    return Bad(absl::StrCat("corrupt: kernel_alignment 0x",
                            absl::Hex(h.kernel_alignment),
                            " is not a power of two >= 4096"));
  }
  const size_t setup_sects = h.setup_sects == 0 ? 4 : h.setup_sects;
  const size_t setup_bytes = (setup_sects + 1) * kSectorSize;
  if (image.size() <= setup_bytes) {
    return Bad(absl::StrCat("truncated: ", image.size(),
                            " bytes, but the setup code alone takes ",
                            setup_bytes));
  }
  out.kernel = image.subspan(setup_bytes);
  const uint64_t declared = uint64_t{h.syssize} * 16;
  if (declared == 0 || declared > out.kernel.size()) {
    return Bad(absl::StrCat("truncated: the header says ", declared,
                            " bytes of protected-mode kernel, the file has ",
                            out.kernel.size()));
  }
  if (h.init_size < out.kernel.size()) {
    return Bad(absl::StrCat("corrupt: init_size ", h.init_size,
                            " is smaller than the kernel (", out.kernel.size(),
                            " bytes)"));
  }
  out.kernel_alignment = h.kernel_alignment;
  out.init_size = h.init_size;
  // A relocatable 2.10+ kernel prefers pref_address; anything below 1 MiB or
  // misaligned would overlap the legacy area, so it is rejected.
  if (h.pref_address < 0x100000 || h.pref_address % h.kernel_alignment != 0) {
    return Bad(absl::StrCat("corrupt: pref_address 0x",
                            absl::Hex(h.pref_address),
                            " is below 1 MiB or not kernel_alignment aligned"));
  }
  out.load_address = h.pref_address;
  out.initrd_addr_max = h.initrd_addr_max;
  out.cmdline_max = h.cmdline_size;  // 2.06+: without the terminating NUL
  out.can_load_above_4g = (h.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G) != 0;
  return out;
}

}  // namespace ssihv::kvm
