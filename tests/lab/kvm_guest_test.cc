// A tiny KVM guest on /dev/kvm with raw ioctls: the lab's reference check
// that its KVM (kvm_amd on QEMU's emulated SVM, nested paging) runs real
// guest code. Independent of libkvm on purpose: when libkvm's tests fail in
// the lab, this one tells whether KVM itself works.
//
// Each case runs a few bytes of 16-bit real-mode code at guest physical
// 0x1000 and checks the exits: port IO with a value, MMIO, HLT.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ssihv/base/mapped_region.h"
#include "ssihv/base/unique_fd.h"

namespace {

using ssihv::base::MappedRegion;
using ssihv::base::UniqueFd;

constexpr uint64_t kCodeGpa = 0x1000;
constexpr size_t kRamSize = 0x8000;  // 32 KiB: GPA 0x8000 is MMIO.
constexpr uint16_t kPort = 0x10;

// Fails the test with the call's name and errno when `ok` is false.
void Check(bool ok, const char* call) {
  if (!ok) FAIL(call << ": " << std::strerror(errno));
}

// One VM with one vCPU and kRamSize bytes of RAM at GPA 0.
class TinyGuest {
 public:
  explicit TinyGuest(const std::vector<uint8_t>& code) {
    kvm_ = UniqueFd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    Check(kvm_.valid(), "open /dev/kvm");
    REQUIRE(::ioctl(kvm_.get(), KVM_GET_API_VERSION, 0) == KVM_API_VERSION);
    vm_ = UniqueFd(::ioctl(kvm_.get(), KVM_CREATE_VM, 0));
    Check(vm_.valid(), "KVM_CREATE_VM");

    auto ram = MappedRegion::Anonymous(kRamSize);
    REQUIRE(ram.ok());
    ram_ = std::move(*ram);
    std::memcpy(ram_.data() + kCodeGpa, code.data(), code.size());
    kvm_userspace_memory_region region{};
    region.slot = 0;
    region.guest_phys_addr = 0;
    region.memory_size = kRamSize;
    region.userspace_addr = reinterpret_cast<uint64_t>(ram_.data());
    Check(::ioctl(vm_.get(), KVM_SET_USER_MEMORY_REGION, &region) == 0,
          "KVM_SET_USER_MEMORY_REGION slot=0");

    vcpu_ = UniqueFd(::ioctl(vm_.get(), KVM_CREATE_VCPU, 0));
    Check(vcpu_.valid(), "KVM_CREATE_VCPU 0");
    int run_size = ::ioctl(kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    REQUIRE(run_size >= static_cast<int>(sizeof(kvm_run)));
    void* run = ::mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                       vcpu_.get(), 0);
    REQUIRE(run != MAP_FAILED);
    run_map_ = MappedRegion::Adopt(run, run_size);
    run_ = static_cast<kvm_run*>(run);
    EnterRealModeAt(kCodeGpa);
  }

  // Runs until the next exit that is not an interrupted KVM_RUN.
  uint32_t Run() {
    while (::ioctl(vcpu_.get(), KVM_RUN, 0) < 0) {
      // EINTR/EAGAIN: a signal or a request kicked us out; just re-enter.
      Check((errno == EINTR || errno == EAGAIN), "KVM_RUN");
    }
    return run_->exit_reason;
  }

  const kvm_run& run() const { return *run_; }
  // The data of the current IO exit; for IN, the VMM writes the value here.
  uint8_t* io_data() const {
    return reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset;
  }
  uint8_t* ram() const { return ram_.data(); }

  uint64_t Rip() const {
    kvm_regs regs{};
    REQUIRE(::ioctl(vcpu_.get(), KVM_GET_REGS, &regs) == 0);
    return regs.rip;
  }

 private:
  void EnterRealModeAt(uint64_t gpa) {
    kvm_sregs sregs{};
    REQUIRE(::ioctl(vcpu_.get(), KVM_GET_SREGS, &sregs) == 0);
    sregs.cs.selector = 0;
    sregs.cs.base = 0;
    sregs.ds.selector = 0;
    sregs.ds.base = 0;
    REQUIRE(::ioctl(vcpu_.get(), KVM_SET_SREGS, &sregs) == 0);
    kvm_regs regs{};
    regs.rip = gpa;
    regs.rflags = 0x2;  // Bit 1 is reserved and must be set.
    REQUIRE(::ioctl(vcpu_.get(), KVM_SET_REGS, &regs) == 0);
  }

  UniqueFd kvm_;
  UniqueFd vm_;
  MappedRegion ram_;
  UniqueFd vcpu_;
  MappedRegion run_map_;
  kvm_run* run_ = nullptr;
};

uint32_t IoValue(const kvm_run& run) {
  uint32_t value = 0;
  std::memcpy(&value,
              reinterpret_cast<const uint8_t*>(&run) + run.io.data_offset,
              run.io.size);
  return value;
}

std::string ExitName(uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_IO:
      return "IO";
    case KVM_EXIT_HLT:
      return "HLT";
    case KVM_EXIT_MMIO:
      return "MMIO";
    case KVM_EXIT_SHUTDOWN:
      return "SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY:
      return "FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR:
      return "INTERNAL_ERROR";
    default:
      return "exit " + std::to_string(reason);
  }
}

}  // namespace

TEST_CASE("a guest OUTs a value on a port, then HLTs") {
  // mov al, 42 ; out 0x10, al ; hlt
  TinyGuest guest({0xb0, 42, 0xe6, kPort, 0xf4});

  REQUIRE(ExitName(guest.Run()) == "IO");
  CHECK(guest.run().io.direction == KVM_EXIT_IO_OUT);
  CHECK(guest.run().io.port == kPort);
  CHECK(guest.run().io.size == 1);
  CHECK(guest.run().io.count == 1);
  CHECK(IoValue(guest.run()) == 42);

  REQUIRE(ExitName(guest.Run()) == "HLT");
  CHECK(guest.Rip() == kCodeGpa + 5);  // Just past the HLT.
}

TEST_CASE("a guest reads a value the VMM supplies on IN and echoes it") {
  // in al, 0x10 ; add al, 1 ; out 0x10, al ; hlt
  TinyGuest guest({0xe4, kPort, 0x04, 0x01, 0xe6, kPort, 0xf4});

  REQUIRE(ExitName(guest.Run()) == "IO");
  REQUIRE(guest.run().io.direction == KVM_EXIT_IO_IN);
  REQUIRE(guest.run().io.size == 1);
  *guest.io_data() = 99;

  REQUIRE(ExitName(guest.Run()) == "IO");
  CHECK(guest.run().io.direction == KVM_EXIT_IO_OUT);
  CHECK(IoValue(guest.run()) == 100);
  REQUIRE(ExitName(guest.Run()) == "HLT");
}

TEST_CASE("a guest loop of ten million iterations computes the right sum") {
  // Runs long enough to take timer interrupts and exits in the middle.
  constexpr uint32_t kIterations = 10'000'000;
  // xor eax, eax ; mov ecx, N ; l: add eax, ecx ; loopd l (ECX) ;
  // mov dx, 0x10 ; out dx, eax ; hlt
  std::vector<uint8_t> code = {0x66, 0x31, 0xc0, 0x66, 0xb9};
  for (int i = 0; i < 4; ++i) code.push_back((kIterations >> (8 * i)) & 0xff);
  code.insert(code.end(), {0x66, 0x01, 0xc8, 0x67, 0xe2, 0xfa, 0xba, kPort,
                           0x00, 0x66, 0xef, 0xf4});
  TinyGuest guest(code);

  REQUIRE(ExitName(guest.Run()) == "IO");
  CHECK(guest.run().io.size == 4);
  uint64_t n = kIterations;
  CHECK(IoValue(guest.run()) == static_cast<uint32_t>(n * (n + 1) / 2));
  REQUIRE(ExitName(guest.Run()) == "HLT");
}

TEST_CASE("a guest store outside its RAM is an MMIO exit with the data") {
  // mov byte [0x8000], 0x5a ; hlt
  TinyGuest guest({0xc6, 0x06, 0x00, 0x80, 0x5a, 0xf4});

  REQUIRE(ExitName(guest.Run()) == "MMIO");
  CHECK(guest.run().mmio.phys_addr == kRamSize);
  CHECK(guest.run().mmio.is_write == 1);
  CHECK(guest.run().mmio.len == 1);
  CHECK(guest.run().mmio.data[0] == 0x5a);
  REQUIRE(ExitName(guest.Run()) == "HLT");
}

TEST_CASE("a guest store into its RAM is seen by the VMM") {
  // mov word [0x2000], 0xbeef ; hlt
  TinyGuest guest({0xc7, 0x06, 0x00, 0x20, 0xef, 0xbe, 0xf4});

  REQUIRE(ExitName(guest.Run()) == "HLT");
  uint16_t value = 0;
  std::memcpy(&value, guest.ram() + 0x2000, sizeof(value));
  CHECK(value == 0xbeef);
}
