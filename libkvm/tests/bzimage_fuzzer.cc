// libFuzzer target: any byte string as a kernel image. ParseBzImage must
// accept it or refuse it with InvalidArgument, and LoadLinux must never write
// outside the guest RAM it was given (ASan catches any stray write).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ssihv/kvm/bzimage.h"
#include "ssihv/kvm/x86_boot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::Span<const uint8_t> image(data, size);
  absl::StatusOr<ssihv::kvm::BzImage> parsed = ssihv::kvm::ParseBzImage(image);
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument)
      __builtin_trap();
    return 0;
  }
  if (parsed->kernel.data() + parsed->kernel.size() != data + size)
    __builtin_trap();
  // 20 MiB of RAM: kernels asking for more are refused, the rest load.
  static std::vector<uint8_t> ram(20 << 20);
  ssihv::kvm::GuestMemory memory;
  (void)memory.AddRegion({0, ram.size(), ram.data()});
  ssihv::kvm::LinuxBootSpec spec;
  spec.kernel_image = image;
  static const uint8_t initrd[4096] = {};
  spec.initrd = initrd;
  spec.cmdline = "console=ttyS0";
  spec.e820 = {{0, 0x9fc00, ssihv::kvm::E820Type::kRam},
               {0x100000, ram.size() - 0x100000, ssihv::kvm::E820Type::kRam}};
  (void)ssihv::kvm::LoadLinux(memory, spec);
  return 0;
}
