// The vCPU kick signal's handler (internal to libkvm). A kick makes KVM_RUN
// return EINTR; the handler also sets immediate_exit on the kvm_run of the
// vCPU its thread runs, so a kick that lands just before KVM_RUN (after the
// thread looked at what is pending) still makes it return at once. This is
// what lets an interrupt, a stop or a host timer (which cannot set
// immediate_exit itself) reach a vCPU at any moment (api.rst,
// "immediate_exit"; QEMU does the same).
#ifndef SSIHV_KVM_SRC_KICK_H_
#define SSIHV_KVM_SRC_KICK_H_

#include <linux/kvm.h>

namespace ssihv::kvm {

/// Installs the handler for KickSignal() once per process.
void InstallKickHandler();
/// The kvm_run the calling thread's kicks set immediate_exit in (nullptr:
/// none).
void SetKickTarget(kvm_run* run);

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_SRC_KICK_H_
