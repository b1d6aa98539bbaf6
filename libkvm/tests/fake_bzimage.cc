#include "fake_bzimage.h"

#include <cstring>

namespace ssihv::kvm::testing {

std::vector<uint8_t> MakeFakeBzImage(const FakeBzImageOptions& o) {
  const size_t setup_bytes =
      (size_t{o.setup_sects == 0 ? 4u : o.setup_sects} + 1) * 512;
  std::vector<uint8_t> payload = o.payload;
  payload.resize((payload.size() + 15) & ~size_t{15}, 0);
  std::vector<uint8_t> image(setup_bytes + payload.size(), 0);
  setup_header h{};
  h.setup_sects = o.setup_sects;
  h.syssize = static_cast<uint32_t>(payload.size() / 16);
  h.boot_flag = 0xaa55;
  // A short jump over the header: 0x202 + 0x6a = 0x26c, its end in 2.15.
  h.jump = 0x6aeb;
  h.header = 0x53726448;  // "HdrS"
  h.version = o.protocol;
  h.loadflags = LOADED_HIGH;
  h.code32_start = 0x100000;
  h.initrd_addr_max = o.initrd_addr_max;
  h.kernel_alignment = o.kernel_alignment;
  h.relocatable_kernel = 1;
  h.min_alignment = 21;
  h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
  h.cmdline_size = o.cmdline_size;
  h.pref_address = o.pref_address;
  h.init_size = o.init_size;
  if (o.edit) o.edit(&h);
  std::memcpy(image.data() + 0x1f1, &h, sizeof(h));
  std::memcpy(image.data() + setup_bytes, payload.data(), payload.size());
  return image;
}

}  // namespace ssihv::kvm::testing
