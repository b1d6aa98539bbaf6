// A small VM for guest-program tests (kvm_guest_test): RAM from GPA 0, a
// recording data port (0xe9), a "done" port (0xf4) that powers off, and a
// recording MMIO device at 0xd0000 and 0xfeb00000. Needs /dev/kvm.
#ifndef SSIHV_KVM_TESTS_TEST_VM_H_
#define SSIHV_KVM_TESTS_TEST_VM_H_

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ssihv/base/mapped_region.h"
#include "ssihv/kvm/bus.h"
#include "ssihv/kvm/kvm.h"
#include "ssihv/kvm/run_loop.h"

#define SSIHV_DECLARE_PAYLOAD(name) \
  extern "C" const uint8_t name##_start[], name##_end[];
#define SSIHV_PAYLOAD(name)         \
  absl::MakeConstSpan(name##_start, \
                      static_cast<size_t>(name##_end - name##_start))

namespace ssihv::kvm::testing {

inline constexpr uint64_t kCodeAddr = 0x1000;
inline constexpr uint16_t kDataPort = 0xe9;
inline constexpr uint16_t kDonePort = 0xf4;
// Real-mode tests map RAM below the MMIO window at 0xd0000.
inline constexpr uint64_t kRealModeRam = 0x80000;

// The KVM module behind /dev/kvm when it does hardware VM entry: kvm_amd
// (SVM) or kvm_intel (VMX); nullptr for others (kvm_pvm on the dev VMs
// here, which runs guests without VMX).
inline const char* HardwareKvmModule() {
  if (::access("/sys/module/kvm_amd", F_OK) == 0) return "kvm_amd";
  if (::access("/sys/module/kvm_intel", F_OK) == 0) return "kvm_intel";
  return nullptr;
}

template <typename T>
T Unwrap(absl::StatusOr<T> v) {
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return *std::move(v);
}

// Records every access; reads of the data port answer 0x41.
class Recorder : public BusDevice {
 public:
  struct Access {
    uint64_t offset;
    bool write;
    uint64_t value;
    size_t size;
    std::chrono::steady_clock::time_point time;
  };
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());
    data[0] = read_value;
    if (data.size() > 1) data[1] = read_value_hi;
    Add({offset, false, 0, data.size(), std::chrono::steady_clock::now()});
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    uint64_t v = 0;
    std::memcpy(&v, data.data(), std::min<size_t>(data.size(), 8));
    Add({offset, true, v, data.size(), std::chrono::steady_clock::now()});
  }
  std::vector<Access> Snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return log;
  }
  std::vector<uint64_t> Writes() {
    std::vector<uint64_t> out;
    for (const Access& a : Snapshot()) {
      if (a.write) out.push_back(a.value);
    }
    return out;
  }
  uint8_t read_value = 0x41;
  uint8_t read_value_hi = 0;

 private:
  void Add(const Access& a) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(a);
  }
  std::mutex mu;
  std::vector<Access> log;
};

class DoneDevice : public BusDevice {
 public:
  explicit DoneDevice(StopLatch* stop) : stop_(stop) {}
  void Read(uint64_t, absl::Span<uint8_t>) override {}
  void Write(uint64_t, absl::Span<const uint8_t>) override {
    stop_->Request(StopReason::kPowerOff);
  }

 private:
  StopLatch* stop_;
};

// A VM with RAM at [0, ram) and the test devices.
struct TestVm {
  explicit TestVm(VmOptions options = {.irqchip = false, .pit = false},
                  uint64_t ram = kRealModeRam)
      : kvm(Unwrap(Kvm::Open())), vm(Unwrap(kvm.CreateVm(options))) {
    auto region = std::make_shared<base::MappedRegion>(
        Unwrap(base::MappedRegion::Anonymous(ram)));
    uint8_t* host = region->data();
    Unwrap(vm.AddMemory(0, ram, host, region));
    // 8 bytes: 32-bit writes at 0xe9 + vCPU index (apic_guest_test.cc).
    REQUIRE(pio.Register(kDataPort, 8, data_port).ok());
    REQUIRE(
        pio.Register(kDonePort, 1, std::make_shared<DoneDevice>(&stop)).ok());
    REQUIRE(mmio.Register(0xd0000, 0x1000, mmio_dev).ok());
    REQUIRE(mmio.Register(0xfeb00000, 0x1000, mmio_dev).ok());
  }

  // A vCPU in real mode at `addr` (cs = 0) running `code`, with rax = id.
  Vcpu RealModeVcpu(absl::Span<const uint8_t> code, uint32_t id = 0,
                    uint64_t addr = kCodeAddr) {
    REQUIRE(vm.memory().Write(addr, code).ok());
    Vcpu vcpu = Unwrap(vm.CreateVcpu(id));
    kvm_sregs s = Unwrap(vcpu.GetSregs());
    s.cs.base = 0;
    s.cs.selector = 0;
    REQUIRE(vcpu.SetSregs(s).ok());
    kvm_regs r{};
    r.rip = addr;
    r.rflags = 2;
    r.rax = id;
    REQUIRE(vcpu.SetRegs(r).ok());
    return vcpu;
  }

  StopEvent RunOne(const Vcpu& vcpu) {
    VcpuRunLoop loop(vcpu, pio, mmio, stop);
    loop.Run();
    return stop.event();
  }

  Kvm kvm;
  Vm vm;
  Bus pio{"pio"};
  Bus mmio{"mmio"};
  StopLatch stop;
  std::shared_ptr<Recorder> data_port = std::make_shared<Recorder>();
  std::shared_ptr<Recorder> mmio_dev = std::make_shared<Recorder>();
};

}  // namespace ssihv::kvm::testing

#endif  // SSIHV_KVM_TESTS_TEST_VM_H_
