// Builds small synthetic bzImages for tests: a valid setup header around a
// caller-supplied protected-mode payload (whose byte 0x200 is the 64-bit
// entry point).
#ifndef SSIHV_KVM_TESTS_FAKE_BZIMAGE_H_
#define SSIHV_KVM_TESTS_FAKE_BZIMAGE_H_

#include <asm/bootparam.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace ssihv::kvm::testing {

struct FakeBzImageOptions {
  uint8_t setup_sects = 4;
  uint16_t protocol = 0x020f;
  uint64_t pref_address = 0x1000000;
  uint32_t kernel_alignment = 0x200000;
  uint32_t init_size = 0x400000;  // 4 MiB decompression window
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t cmdline_size = 2047;
  /// The protected-mode kernel; padded to at least 0x200 + its code.
  std::vector<uint8_t> payload = std::vector<uint8_t>(0x400, 0x90);
  /// Last-moment edits of the header (for corrupt-image tests).
  std::function<void(setup_header*)> edit;
};

std::vector<uint8_t> MakeFakeBzImage(const FakeBzImageOptions& options = {});

}  // namespace ssihv::kvm::testing

#endif  // SSIHV_KVM_TESTS_FAKE_BZIMAGE_H_
