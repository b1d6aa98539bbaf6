// DescribeFailEntry / DescribeInternalError over synthetic kvm_run contents:
// the vendor encodings and suberror layouts that the guest-program tests
// (exit_errors_test.cc) cannot all reach on one machine — the lab is AMD,
// the dev VMs run kvm_pvm, and no test provokes a VMX entry failure.
#include "ssihv/kvm/run_loop.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

namespace ssihv::kvm {
namespace {

kvm_run FailEntry(uint64_t reason, uint32_t cpu) {
  kvm_run run;
  std::memset(&run, 0, sizeof(run));
  run.exit_reason = KVM_EXIT_FAIL_ENTRY;
  run.fail_entry.hardware_entry_failure_reason = reason;
  run.fail_entry.cpu = cpu;
  return run;
}

TEST_CASE("DescribeFailEntry names the hardware reason of both vendors") {
  // What kvm_amd reported in the lab for a refused VMRUN.
  CHECK(DescribeFailEntry(FailEntry(0xffffffff, 1)) ==
        "hardware entry failure reason 0xffffffff (SVM_EXIT_ERR: VMRUN "
        "refused the guest state (consistency checks)) on host CPU 1: the "
        "vCPU state is invalid for VM entry");
  CHECK_THAT(DescribeFailEntry(FailEntry(~uint64_t{0}, 0)),
             Catch::Contains("0xffffffffffffffff (SVM_EXIT_ERR: "));
  CHECK_THAT(DescribeFailEntry(FailEntry(0x80000021, 3)),
             Catch::Contains("0x80000021 (VMX: invalid guest state) on host "
                             "CPU 3"));
  CHECK_THAT(DescribeFailEntry(FailEntry(0x80000022, 0)),
             Catch::Contains("(VMX: MSR loading)"));
  CHECK_THAT(DescribeFailEntry(FailEntry(0x80000029, 0)),
             Catch::Contains("(VMX: machine-check event)"));
  CHECK_THAT(DescribeFailEntry(FailEntry(0x80000002, 0)),
             Catch::Contains("(VMX: failed VM entry)"));
  // A VMX instruction error is not a verdict on the guest state.
  CHECK(DescribeFailEntry(FailEntry(7, 2)) ==
        "hardware entry failure reason 0x7 (VMX instruction error 7: VM entry "
        "with invalid control field(s)) on host CPU 2: VM entry failed");
  CHECK_THAT(DescribeFailEntry(FailEntry(8, 0)),
             Catch::Contains("invalid host-state field(s)"));
  CHECK_THAT(DescribeFailEntry(FailEntry(0x1234567890, 0)),
             Catch::Contains("0x1234567890 (unknown)"));
}

kvm_run Internal(uint32_t suberror, std::initializer_list<uint64_t> data) {
  kvm_run run;
  std::memset(&run, 0, sizeof(run));
  run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run.internal.suberror = suberror;
  run.internal.ndata = static_cast<uint32_t>(data.size());
  size_t i = 0;
  for (uint64_t d : data) run.internal.data[i++] = d;
  return run;
}

TEST_CASE("DescribeInternalError names the suberror and decodes its data") {
  SECTION("emulation failure as Linux 6.1 reports it: flags, then data") {
    // data[0] = flags (none), then exit info (here SVM #NPF, GPA 0xe0000).
    kvm_run run =
        Internal(KVM_INTERNAL_ERROR_EMULATION, {0, 0x400, 0x14, 0xe0000, 0, 0});
    CHECK(DescribeInternalError(run) ==
          "suberror 1 (KVM_INTERNAL_ERROR_EMULATION: instruction emulation "
          "failed), data: 0x400 0x14 0xe0000 0x0 0x0");
  }
  SECTION("emulation failure with the instruction bytes") {
    kvm_run run = Internal(KVM_INTERNAL_ERROR_EMULATION, {0, 0, 0, 0x30});
    run.emulation_failure.flags =
        KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    run.emulation_failure.insn_size = 3;
    const uint8_t bytes[] = {0x0f, 0x01, 0xd9};
    std::memcpy(run.emulation_failure.insn_bytes, bytes, sizeof(bytes));
    CHECK(DescribeInternalError(run) ==
          "suberror 1 (KVM_INTERNAL_ERROR_EMULATION: instruction emulation "
          "failed), instruction bytes: 0f 01 d9, data: 0x30");
  }
  SECTION("emulation failure without data (old kernels)") {
    CHECK(DescribeInternalError(Internal(KVM_INTERNAL_ERROR_EMULATION, {})) ==
          "suberror 1 (KVM_INTERNAL_ERROR_EMULATION: instruction emulation "
          "failed)");
  }
  SECTION("the other suberrors keep every data word") {
    CHECK(DescribeInternalError(
              Internal(KVM_INTERNAL_ERROR_DELIVERY_EV, {0x80000b0e, 0x31})) ==
          "suberror 3 (KVM_INTERNAL_ERROR_DELIVERY_EV: exit while delivering "
          "an event), data: 0x80000b0e 0x31");
    CHECK_THAT(DescribeInternalError(Internal(KVM_INTERNAL_ERROR_SIMUL_EX, {})),
               Catch::Contains("exception while delivering another"));
    CHECK_THAT(DescribeInternalError(
                   Internal(KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON, {0x7f})),
               Catch::Contains("unexpected VM exit), data: 0x7f"));
    CHECK(DescribeInternalError(Internal(99, {1})) ==
          "suberror 99 (unknown suberror), data: 0x1");
  }
  SECTION("a bogus ndata is capped at the 16 words kvm_run holds") {
    kvm_run run = Internal(KVM_INTERNAL_ERROR_DELIVERY_EV, {});
    run.internal.ndata = 1000;
    std::string s = DescribeInternalError(run);
    size_t words = 0;
    for (size_t p = s.find(" 0x"); p != std::string::npos;
         p = s.find(" 0x", p + 1)) {
      ++words;
    }
    CHECK(words == 16);
  }
}

}  // namespace
}  // namespace ssihv::kvm
