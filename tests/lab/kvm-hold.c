// kvm-hold: guard (b) against a QEMU 7.2 multi-threaded TCG hang (issue 3).
//
// Creating the first KVM VM (and destroying the last) makes the guest kernel
// live-patch code that every CPU keeps executing: KVM's preempt notifiers
// are a static key tested in __schedule(). QEMU 7.2 sometimes keeps running
// a stale translation of the patched code and both vCPUs spin forever.
// Holding VMs open for the lab's whole life keeps those keys switched on, so
// tests creating and destroying their own VMs never toggle them:
//   - VM 1 has no in-kernel irqchip and one vCPU (kvm_has_noapic_vcpu key),
//   - VM 2 has an in-kernel irqchip and one vCPU (the LAPIC's deferred keys).
// Built statically by tests/lab/prepare.sh and started by the lab's init.
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int Fail(const char* what) {
  fprintf(stderr, "kvm-hold: %s: %s\n", what, strerror(errno));
  return 1;
}

static int HoldVm(int kvm, int with_irqchip) {
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) return Fail("KVM_CREATE_VM");
  if (with_irqchip && ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
    return Fail("KVM_CREATE_IRQCHIP");
  }
  if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0) return Fail("KVM_CREATE_VCPU 0");
  return 0;
}

int main(int argc, char** argv) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return Fail("open /dev/kvm");
  if (HoldVm(kvm, 0) != 0 || HoldVm(kvm, 1) != 0) return 1;
  // Tell init we hold them (it waits for this file before going on).
  if (argc > 1) {
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Fail(argv[1]);
    close(fd);
  }
  for (;;) pause();
}
