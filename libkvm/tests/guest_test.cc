// Guest programs on real KVM (label kvm; skipped without /dev/kvm): IO and
// MMIO exits, HLT, CPUID as the guest sees it, a triple fault, a fault on
// userfaultfd-registered guest memory, a clean multi-vCPU stop, and a fake
// bzImage booted through LoadLinux into long mode.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_bzimage.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/cluster/config.h"
#include "ssihv/kvm/kvm.h"
#include "ssihv/kvm/run_loop.h"
#include "ssihv/kvm/x86_boot.h"
#include "ssihv/kvm/x86_vcpu.h"
#include "ssihv/testing/log_capture.h"
#include "test_vm.h"

SSIHV_DECLARE_PAYLOAD(guest_rm_io)
SSIHV_DECLARE_PAYLOAD(guest_rm_mmio)
SSIHV_DECLARE_PAYLOAD(guest_rm_uffd)
SSIHV_DECLARE_PAYLOAD(guest_rm_cpuid)
SSIHV_DECLARE_PAYLOAD(guest_rm_spin)
SSIHV_DECLARE_PAYLOAD(guest_lm_triple_fault)
SSIHV_DECLARE_PAYLOAD(guest_lm_kernel)

namespace ssihv::kvm {
namespace {

using testing::kCodeAddr;
using testing::kDataPort;
using testing::Recorder;
using testing::TestVm;
using testing::Unwrap;

TEST_CASE("IO exits: out, in and a 16-bit out reach the port bus") {
  TestVm t;
  Vcpu vcpu = t.RealModeVcpu(SSIHV_PAYLOAD(guest_rm_io));
  StopEvent e = t.RunOne(vcpu);
  CHECK(e.reason == StopReason::kHalted);
  CHECK(e.vcpu == 0);
  auto log = t.data_port->Snapshot();
  REQUIRE(log.size() == 4);
  CHECK((log[0].write && log[0].value == 0x42 && log[0].size == 1));
  CHECK((!log[1].write && log[1].size == 1));
  CHECK((log[2].write && log[2].value == 0x42));  // 0x41 + 1
  CHECK((log[3].write && log[3].value == 0x1234 && log[3].size == 2));
}

TEST_CASE(
    "MMIO exits: writes and reads of unbacked memory reach the MMIO bus") {
  TestVm t;
  t.mmio_dev->read_value = 0xcd;
  t.mmio_dev->read_value_hi = 0xab;
  Vcpu vcpu = t.RealModeVcpu(SSIHV_PAYLOAD(guest_rm_mmio));
  StopEvent e = t.RunOne(vcpu);
  CHECK(e.reason == StopReason::kHalted);
  auto log = t.mmio_dev->Snapshot();
  REQUIRE(log.size() == 2);
  CHECK((log[0].write && log[0].offset == 0x10 && log[0].value == 0x5a &&
         log[0].size == 1));
  CHECK((!log[1].write && log[1].offset == 0x20 && log[1].size == 2));
  CHECK(t.data_port->Writes() == std::vector<uint64_t>{0xabcd});
}

TEST_CASE("CPUID: the guest sees its APIC ID and node, not the host's") {
  TestVm t;
  const uint32_t id = 5;
  Vcpu vcpu = t.RealModeVcpu(SSIHV_PAYLOAD(guest_rm_cpuid), id);
  REQUIRE(ConfigureX86Vcpu(vcpu, t.vm.supported_cpuid(),
                           {.apic_id = id, .node = 1}, IrqchipKind::kNone)
              .ok());
  StopEvent e = t.RunOne(vcpu);
  REQUIRE(e.reason == StopReason::kHalted);
  auto w = t.data_port->Writes();
  REQUIRE(w.size() == 4);
  CHECK((w[0] >> 24) == id);
  CHECK(((w[0] >> 16) & 0xff) == 1);
  const bool has_0b = FindCpuid(t.vm.supported_cpuid(), 0xb, 0) != nullptr;
  if (has_0b) CHECK(w[1] == id);
  if (t.kvm.vendor() == CpuVendor::kAmd &&
      FindCpuid(t.vm.supported_cpuid(), 0x8000001e) != nullptr) {
    CHECK(w[2] == id);
    CHECK((w[3] & 0xff) == 1);
  }
  INFO("vendor " << CpuVendorName(t.kvm.vendor()) << ", leaf 0xb " << has_0b);
}

TEST_CASE("the reset-vector stub turns a BIOS reboot into an i8042 reset") {
  TestVm t(VmOptions{.irqchip = false, .pit = false}, 1 << 20);
  auto kbc = std::make_shared<Recorder>();
  REQUIRE(t.pio.Register(0x64, 1, kbc).ok());
  REQUIRE(WriteResetVectorStub(t.vm.memory()).ok());
  Vcpu vcpu = Unwrap(t.vm.CreateVcpu(0));
  // Where Linux's machine_real_restart() jumps: f000:fff0 in real mode.
  kvm_sregs s = Unwrap(vcpu.GetSregs());
  s.cs.selector = 0xf000;
  s.cs.base = 0xf0000;
  REQUIRE(vcpu.SetSregs(s).ok());
  kvm_regs r{};
  r.rip = 0xfff0;
  r.rflags = 2;
  REQUIRE(vcpu.SetRegs(r).ok());
  StopEvent e = t.RunOne(vcpu);
  CHECK(e.reason == StopReason::kHalted);
  CHECK(kbc->Writes() == std::vector<uint64_t>{0xfe});
}

// A minimal userfaultfd handler for the test: every missing page is filled
// with 0xa5 and its address recorded. Kernel-mode faults (KVM's own
// accesses) must be allowed, so no UFFD_USER_MODE_ONLY.
class UffdFiller {
 public:
  explicit UffdFiller(size_t size) : size_(size) {
    fd_ = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    REQUIRE(fd_ >= 0);
    uffdio_api api{};
    api.api = UFFD_API;
    REQUIRE(::ioctl(fd_, UFFDIO_API, &api) == 0);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    mem_ = static_cast<uint8_t*>(p);
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<uint64_t>(mem_);
    reg.range.len = size;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    REQUIRE(::ioctl(fd_, UFFDIO_REGISTER, &reg) == 0);
    REQUIRE(::pipe(stop_pipe_) == 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~UffdFiller() {
    char c = 0;
    (void)!::write(stop_pipe_[1], &c, 1);
    thread_.join();
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
    ::munmap(mem_, size_);
    ::close(fd_);
  }
  uint8_t* mem() const { return mem_; }
  std::vector<uint64_t> faults() {
    std::lock_guard<std::mutex> lock(mu_);
    return faults_;
  }

 private:
  void Serve() {
    std::vector<uint8_t> page(4096, 0xa5);
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents) return;
      uffd_msg msg;
      if (::read(fd_, &msg, sizeof(msg)) != sizeof(msg)) continue;
      if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
      uint64_t addr = msg.arg.pagefault.address & ~4095ull;
      {
        std::lock_guard<std::mutex> lock(mu_);
        faults_.push_back(addr - reinterpret_cast<uint64_t>(mem_));
      }
      uffdio_copy copy{};
      copy.dst = addr;
      copy.src = reinterpret_cast<uint64_t>(page.data());
      copy.len = 4096;
      ::ioctl(fd_, UFFDIO_COPY, &copy);  // EEXIST: already resolved
    }
  }
  size_t size_;
  int fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  uint8_t* mem_ = nullptr;
  std::mutex mu_;
  std::vector<uint64_t> faults_;
  std::thread thread_;
};

TEST_CASE("a guest fault on uffd-registered memory is served by the handler") {
  TestVm t(VmOptions{.irqchip = false, .pit = false}, 0x10000);
  auto filler = std::make_shared<UffdFiller>(0x10000);
  Unwrap(t.vm.AddMemory(0x10000, 0x10000, filler->mem(), filler));
  Vcpu vcpu = t.RealModeVcpu(SSIHV_PAYLOAD(guest_rm_uffd));
  StopEvent e = t.RunOne(vcpu);
  REQUIRE(e.reason == StopReason::kHalted);
  CHECK(t.data_port->Writes() == std::vector<uint64_t>{0xa5, 0x77});
  // KVM's own accesses went through userfaultfd: pages 0 and 2, once each.
  auto faults = filler->faults();
  std::sort(faults.begin(), faults.end());
  CHECK(faults == std::vector<uint64_t>{0x0, 0x2000});
  CHECK(filler->mem()[0x2000] == 0x77);
}

TEST_CASE("vCPU threads stop cleanly: immediate_exit and a kick signal") {
  TestVm t;
  REQUIRE(t.vm.memory().Write(kCodeAddr, SSIHV_PAYLOAD(guest_rm_spin)).ok());
  std::vector<Vcpu> vcpus;
  for (uint32_t i = 0; i < 2; ++i)
    vcpus.push_back(t.RealModeVcpu(SSIHV_PAYLOAD(guest_rm_spin), i));
  VcpuThreads threads({&vcpus[0], &vcpus[1]}, t.pio, t.mmio, t.stop);
  REQUIRE(threads.Start().ok());
  // Both vCPUs reported their index and then moved their spin counter: both
  // are inside KVM_RUN in guest mode, which no exit of theirs will leave, so
  // each must be kicked out by the stop (an EINTR exit apiece).
  auto counter = [&](uint64_t index) {
    return Unwrap(t.vm.memory().ReadObject<uint16_t>(0x600 + 2 * index));
  };
  for (;;) {
    auto w = t.data_port->Writes();
    if (std::count(w.begin(), w.end(), 0) && std::count(w.begin(), w.end(), 1))
      break;
    std::this_thread::yield();
  }
  for (uint64_t i = 0; i < 2; ++i) {
    uint16_t first = counter(i);
    while (counter(i) == first) std::this_thread::yield();
  }
  REQUIRE(t.stop.Request(StopReason::kStopRequested));
  StopEvent e = threads.Join();
  CHECK(e.reason == StopReason::kStopRequested);
  CHECK(threads.TotalStats().io_exits == 2);
  CHECK(threads.TotalStats().signal_exits >= 2);
}

// Boots `payload` as the protected-mode kernel of a fake bzImage in a VM
// with 3 GiB of RAM (up to the hole), in-kernel irqchip and PIT.
struct FakeKernelBoot {
  explicit FakeKernelBoot(absl::Span<const uint8_t> payload)
      : t(VmOptions{}, uint64_t{3} << 30) {
    testing::FakeBzImageOptions o;
    o.payload.assign(payload.begin(), payload.end());
    image = testing::MakeFakeBzImage(o);
    cluster::ClusterConfig config = Unwrap(cluster::ParseClusterConfig(
        R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 3072}]})"));
    spec.kernel_image = image;
    spec.initrd = initrd;
    spec.cmdline = "hello";
    spec.e820 = Unwrap(BuildE820(cluster::GuestLayout(config)));
    info = Unwrap(LoadLinux(t.vm.memory(), spec));
  }
  StopEvent Run() {
    Vcpu vcpu = Unwrap(t.vm.CreateVcpu(0));
    REQUIRE(ConfigureX86Vcpu(vcpu, t.vm.supported_cpuid(), {0, 0},
                             IrqchipKind::kKernel)
                .ok());
    REQUIRE(SetupLinuxBootVcpu(vcpu, info).ok());
    return t.RunOne(vcpu);
  }
  TestVm t;
  std::vector<uint8_t> image;
  std::vector<uint8_t> initrd = std::vector<uint8_t>(5000, 0x11);
  LinuxBootSpec spec;
  LinuxBootInfo info;
};

TEST_CASE("LoadLinux + long mode: a fake bzImage sees the boot protocol") {
  FakeKernelBoot boot(SSIHV_PAYLOAD(guest_lm_kernel));
  StopEvent e = boot.Run();
  INFO(e.status.ToString());
  REQUIRE(e.reason == StopReason::kPowerOff);
  auto w = boot.t.data_port->Writes();
  REQUIRE(w.size() == 6);
  CHECK(w[0] == kBootCsSelector);
  CHECK(w[1] == boot.spec.e820.size());
  CHECK(w[2] == kCmdlineAddr);
  CHECK(w[3] == 'h');
  CHECK(w[4] == boot.info.initrd_addr);
  CHECK(w[5] == 0xc0ffee);
  auto mmio = boot.t.mmio_dev->Snapshot();
  REQUIRE(mmio.size() == 1);
  CHECK((mmio[0].write && mmio[0].value == 0xdeadbeef && mmio[0].size == 4));
}

TEST_CASE("a triple fault stops the VM as KVM_EXIT_SHUTDOWN") {
  ssihv::testing::LogCapture logs;
  FakeKernelBoot boot(SSIHV_PAYLOAD(guest_lm_triple_fault));
  StopEvent e = boot.Run();
  INFO(e.status.ToString());
  CHECK(e.reason == StopReason::kTripleFault);
  CHECK(e.status.ok());
  // The dump (the only line with registers) says where the vCPU faulted, or
  // that kvm_amd already reset it (then its RIP is the reset vector's).
  INFO(logs.All());
  REQUIRE(logs.Contains("KVM_EXIT_SHUTDOWN"));
  CHECK(logs.Contains("rip=000000000000fff0") ==
        logs.Contains("KVM's reset state"));
}

TEST_CASE("a memory slot keeps its mapping alive as long as the VM or a vCPU") {
  Kvm kvm = Unwrap(Kvm::Open());
  std::weak_ptr<base::MappedRegion> watch;
  std::optional<Vcpu> vcpu;
  {
    Vm vm = Unwrap(kvm.CreateVm({.irqchip = false, .pit = false}));
    auto region = std::make_shared<base::MappedRegion>(
        Unwrap(base::MappedRegion::Anonymous(0x10000)));
    watch = region;
    Unwrap(vm.AddMemory(0, 0x10000, region->data(), region));
    region.reset();
    CHECK_FALSE(watch.expired());  // the slot holds it
    vcpu.emplace(Unwrap(vm.CreateVcpu(0)));
    // An owner-less or misaligned slot cannot be expressed.
    CHECK(vm.AddMemory(0x10000, 0x1000, reinterpret_cast<uint8_t*>(0x1000),
                       nullptr)
              .status()
              .code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK_FALSE(watch.expired());  // the vCPU outlives the Vm object
  vcpu.reset();
  CHECK(watch.expired());
}

TEST_CASE("Kvm::Open explains a missing or forbidden device") {
  auto missing = Kvm::Open("/dev/does-not-exist-kvm");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(
      std::string(missing.status().message()),
      Catch::Contains("modprobe kvm_intel") && Catch::Contains("lab VM"));
  CHECK_THAT(KvmOpenAdvice(EACCES, "/dev/kvm"), Catch::Contains("kvm"));
  CHECK_THAT(KvmOpenAdvice(EACCES, "/dev/kvm"), Catch::Contains("usermod"));
}

}  // namespace
}  // namespace ssihv::kvm
