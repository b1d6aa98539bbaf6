#include "sys/kvm_ioctl.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"

namespace ssihv::kvm::sys {
namespace {

using base::LastErrnoStatus;
using base::UniqueFd;

// <linux/kvm.h> declares its flexible arrays with __DECLARE_FLEX_ARRAY, whose
// empty struct is 1 byte in C++ (0 in C): in C++ sizeof(kvm_cpuid2) is 12, its
// `entries` sit at offset 12 and the ioctl numbers encode the wrong size, so
// the kernel answers EINVAL (fixed upstream in 6.6). These are the ABI
// layouts (arch/x86/include/uapi/asm/kvm.h) with the arrays following the
// header, and the ioctl numbers computed from them.
struct CpuidHeader {  // struct kvm_cpuid2
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {  // struct kvm_msrs
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrListHeader {  // struct kvm_msr_list
  uint32_t nmsrs;
};
static_assert(sizeof(CpuidHeader) == 8 && sizeof(MsrsHeader) == 8 &&
              sizeof(MsrListHeader) == 4);
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);

// A header followed by `n` elements, zeroed, 8-byte aligned.
template <typename Header, typename Elem>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t n)
      : storage_(new uint64_t[(sizeof(Header) + n * sizeof(Elem) + 7) / 8]()) {}
  Header* header() { return reinterpret_cast<Header*>(storage_.get()); }
  Elem* elems() {
    return reinterpret_cast<Elem*>(reinterpret_cast<char*>(storage_.get()) +
                                   sizeof(Header));
  }

 private:
  std::unique_ptr<uint64_t[]> storage_;
};

absl::Status Check(int rc, absl::string_view op) {
  return rc < 0 ? LastErrnoStatus(op) : absl::OkStatus();
}

}  // namespace

absl::StatusOr<UniqueFd> OpenDevice(const char* path, int* err_out) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  *err_out = fd ? 0 : errno;
  if (!fd) return LastErrnoStatus(absl::StrCat("open ", path));
  return fd;
}

absl::StatusOr<int> GetApiVersion(int kvm_fd) {
  int rc = ::ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
  if (rc < 0) return LastErrnoStatus("KVM_GET_API_VERSION");
  return rc;
}

absl::StatusOr<int> CheckExtension(int fd, int capability) {
  int rc = ::ioctl(fd, KVM_CHECK_EXTENSION, capability);
  if (rc < 0) {
    return LastErrnoStatus(
        absl::StrCat("KVM_CHECK_EXTENSION cap=", capability));
  }
  return rc;
}

absl::StatusOr<size_t> GetVcpuMmapSize(int kvm_fd) {
  int rc = ::ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (rc < 0) return LastErrnoStatus("KVM_GET_VCPU_MMAP_SIZE");
  return static_cast<size_t>(rc);
}

absl::StatusOr<std::vector<kvm_cpuid_entry2>> GetSupportedCpuid(int kvm_fd) {
  // The kernel fails with E2BIG until nent covers every leaf it reports.
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    FlexBuffer<CpuidHeader, kvm_cpuid_entry2> buf(n);
    buf.header()->nent = n;
    if (::ioctl(kvm_fd, kGetSupportedCpuid, buf.header()) == 0) {
      return std::vector<kvm_cpuid_entry2>(buf.elems(),
                                           buf.elems() + buf.header()->nent);
    }
    if (errno != E2BIG) return LastErrnoStatus("KVM_GET_SUPPORTED_CPUID");
  }
  return absl::InternalError("KVM_GET_SUPPORTED_CPUID: more than 4096 leaves");
}

absl::StatusOr<std::vector<uint32_t>> GetMsrIndexList(int kvm_fd) {
  for (uint32_t n = 128; n <= 16384; n *= 2) {
    FlexBuffer<MsrListHeader, uint32_t> buf(n);
    buf.header()->nmsrs = n;
    if (::ioctl(kvm_fd, kGetMsrIndexList, buf.header()) == 0) {
      return std::vector<uint32_t>(buf.elems(),
                                   buf.elems() + buf.header()->nmsrs);
    }
    if (errno != E2BIG) return LastErrnoStatus("KVM_GET_MSR_INDEX_LIST");
  }
  return absl::InternalError("KVM_GET_MSR_INDEX_LIST: more than 16384 MSRs");
}

absl::StatusOr<UniqueFd> CreateVm(int kvm_fd) {
  // KVM_CREATE_VM can fail with EINTR when a signal arrives while the kernel
  // waits for an earlier VM's teardown (Firecracker retries it the same way).
  for (;;) {
    int fd = ::ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != EINTR) return LastErrnoStatus("KVM_CREATE_VM");
  }
}

absl::Status SetUserMemoryRegion(int vm_fd,
                                 const kvm_userspace_memory_region& region) {
  if (::ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) == 0) {
    return absl::OkStatus();
  }
  return LastErrnoStatus(
      absl::StrCat("KVM_SET_USER_MEMORY_REGION slot=", region.slot, " gpa=0x",
                   absl::Hex(region.guest_phys_addr), " size=0x",
                   absl::Hex(region.memory_size)));
}

absl::Status CreateIrqchip(int vm_fd) {
  return Check(::ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
}

absl::Status CreatePit2(int vm_fd, const kvm_pit_config& config) {
  return Check(::ioctl(vm_fd, KVM_CREATE_PIT2, &config), "KVM_CREATE_PIT2");
}

absl::Status SetTssAddr(int vm_fd, uint64_t addr) {
  return Check(
      ::ioctl(vm_fd, KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)),
      absl::StrCat("KVM_SET_TSS_ADDR 0x", absl::Hex(addr)));
}

absl::Status SetIdentityMapAddr(int vm_fd, uint64_t addr) {
  return Check(::ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr),
               absl::StrCat("KVM_SET_IDENTITY_MAP_ADDR 0x", absl::Hex(addr)));
}

absl::Status IrqLine(int vm_fd, uint32_t irq, uint32_t level) {
  kvm_irq_level line{};
  line.irq = irq;
  line.level = level;
  return Check(::ioctl(vm_fd, KVM_IRQ_LINE, &line),
               absl::StrCat("KVM_IRQ_LINE irq=", irq, " level=", level));
}

absl::Status EnableCap(int fd, const kvm_enable_cap& cap) {
  return Check(::ioctl(fd, KVM_ENABLE_CAP, &cap),
               absl::StrCat("KVM_ENABLE_CAP cap=", cap.cap));
}

absl::Status SetMsrFilter(int vm_fd, const kvm_msr_filter& filter) {
  return Check(::ioctl(vm_fd, KVM_X86_SET_MSR_FILTER, &filter),
               "KVM_X86_SET_MSR_FILTER");
}

absl::StatusOr<UniqueFd> CreateVcpu(int vm_fd, uint32_t vcpu_id) {
  int fd = ::ioctl(vm_fd, KVM_CREATE_VCPU, static_cast<unsigned long>(vcpu_id));
  if (fd < 0)
    return LastErrnoStatus(absl::StrCat("KVM_CREATE_VCPU id=", vcpu_id));
  return UniqueFd(fd);
}

absl::StatusOr<kvm_run*> MapRun(int vcpu_fd, size_t size) {
  void* p =
      ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
  if (p == MAP_FAILED) {
    return LastErrnoStatus(absl::StrCat("mmap kvm_run size=", size));
  }
  return static_cast<kvm_run*>(p);
}

void UnmapRun(kvm_run* run, size_t size) { ::munmap(run, size); }

int Run(int vcpu_fd) { return ::ioctl(vcpu_fd, KVM_RUN, 0) < 0 ? errno : 0; }

absl::Status GetRegs(int vcpu_fd, kvm_regs* regs) {
  return Check(::ioctl(vcpu_fd, KVM_GET_REGS, regs), "KVM_GET_REGS");
}
absl::Status SetRegs(int vcpu_fd, const kvm_regs& regs) {
  return Check(::ioctl(vcpu_fd, KVM_SET_REGS, &regs), "KVM_SET_REGS");
}
absl::Status GetSregs(int vcpu_fd, kvm_sregs* sregs) {
  return Check(::ioctl(vcpu_fd, KVM_GET_SREGS, sregs), "KVM_GET_SREGS");
}
absl::Status SetSregs(int vcpu_fd, const kvm_sregs& sregs) {
  return Check(::ioctl(vcpu_fd, KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
}
absl::Status GetFpu(int vcpu_fd, kvm_fpu* fpu) {
  return Check(::ioctl(vcpu_fd, KVM_GET_FPU, fpu), "KVM_GET_FPU");
}
absl::Status SetFpu(int vcpu_fd, const kvm_fpu& fpu) {
  return Check(::ioctl(vcpu_fd, KVM_SET_FPU, &fpu), "KVM_SET_FPU");
}

absl::Status SetCpuid2(int vcpu_fd,
                       const std::vector<kvm_cpuid_entry2>& entries) {
  FlexBuffer<CpuidHeader, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.elems());
  return Check(::ioctl(vcpu_fd, kSetCpuid2, buf.header()),
               absl::StrCat("KVM_SET_CPUID2 nent=", entries.size()));
}

absl::StatusOr<int> SetMsrs(int vcpu_fd,
                            const std::vector<kvm_msr_entry>& msrs) {
  FlexBuffer<MsrsHeader, kvm_msr_entry> buf(msrs.size());
  buf.header()->nmsrs = static_cast<uint32_t>(msrs.size());
  std::copy(msrs.begin(), msrs.end(), buf.elems());
  int rc = ::ioctl(vcpu_fd, kSetMsrs, buf.header());
  if (rc < 0)
    return LastErrnoStatus(absl::StrCat("KVM_SET_MSRS n=", msrs.size()));
  return rc;
}

absl::StatusOr<int> GetMsrs(int vcpu_fd, std::vector<kvm_msr_entry>* msrs) {
  FlexBuffer<MsrsHeader, kvm_msr_entry> buf(msrs->size());
  buf.header()->nmsrs = static_cast<uint32_t>(msrs->size());
  std::copy(msrs->begin(), msrs->end(), buf.elems());
  int rc = ::ioctl(vcpu_fd, kGetMsrs, buf.header());
  if (rc < 0)
    return LastErrnoStatus(absl::StrCat("KVM_GET_MSRS n=", msrs->size()));
  std::copy(buf.elems(), buf.elems() + msrs->size(), msrs->begin());
  return rc;
}

absl::Status GetLapic(int vcpu_fd, kvm_lapic_state* lapic) {
  return Check(::ioctl(vcpu_fd, KVM_GET_LAPIC, lapic), "KVM_GET_LAPIC");
}
absl::Status SetLapic(int vcpu_fd, const kvm_lapic_state& lapic) {
  return Check(::ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
}
absl::Status GetMpState(int vcpu_fd, kvm_mp_state* state) {
  return Check(::ioctl(vcpu_fd, KVM_GET_MP_STATE, state), "KVM_GET_MP_STATE");
}

absl::Status Interrupt(int vcpu_fd, uint32_t vector) {
  kvm_interrupt irq{};
  irq.irq = vector;
  return Check(::ioctl(vcpu_fd, KVM_INTERRUPT, &irq),
               absl::StrCat("KVM_INTERRUPT vector=", vector));
}

absl::Status Nmi(int vcpu_fd) {
  return Check(::ioctl(vcpu_fd, KVM_NMI, 0), "KVM_NMI");
}

absl::Status SetVcpuEvents(int vcpu_fd, const kvm_vcpu_events& events) {
  return Check(::ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &events),
               "KVM_SET_VCPU_EVENTS");
}

absl::Status GetClock(int vm_fd, kvm_clock_data* data) {
  return Check(::ioctl(vm_fd, KVM_GET_CLOCK, data), "KVM_GET_CLOCK");
}

absl::Status SetClock(int vm_fd, const kvm_clock_data& data) {
  return Check(::ioctl(vm_fd, KVM_SET_CLOCK, &data), "KVM_SET_CLOCK");
}

absl::Status GetTscOffset(int vcpu_fd, uint64_t* offset) {
  kvm_device_attr attr{};
  attr.group = KVM_VCPU_TSC_CTRL;
  attr.attr = KVM_VCPU_TSC_OFFSET;
  attr.addr = reinterpret_cast<uint64_t>(offset);
  return Check(::ioctl(vcpu_fd, KVM_GET_DEVICE_ATTR, &attr),
               "KVM_GET_DEVICE_ATTR (KVM_VCPU_TSC_OFFSET)");
}

absl::Status SetTscOffset(int vcpu_fd, uint64_t offset) {
  kvm_device_attr attr{};
  attr.group = KVM_VCPU_TSC_CTRL;
  attr.attr = KVM_VCPU_TSC_OFFSET;
  attr.addr = reinterpret_cast<uint64_t>(&offset);
  return Check(::ioctl(vcpu_fd, KVM_SET_DEVICE_ATTR, &attr),
               "KVM_SET_DEVICE_ATTR (KVM_VCPU_TSC_OFFSET)");
}

}  // namespace ssihv::kvm::sys
