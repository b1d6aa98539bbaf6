// Port-I/O and MMIO dispatch: devices registered at address ranges, looked
// up on every IO/MMIO exit. Registration happens before vCPUs run; lookups
// afterwards are read-only and lock-free.
#ifndef SSIHV_KVM_BUS_H_
#define SSIHV_KVM_BUS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace ssihv::kvm {

/// A device on a Bus. Called from vCPU threads (several at once on an SMP
/// guest); a device with state shared across threads locks it itself.
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  /// `offset` is relative to the base the device was registered at.
  virtual void Read(uint64_t offset, absl::Span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, absl::Span<const uint8_t> data) = 0;
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  /// Claims [base, base + length) for `device`; AlreadyExists on overlap.
  absl::Status Register(uint64_t base, uint64_t length,
                        std::shared_ptr<BusDevice> device);

  /// Dispatches an access. Without a device a read returns all ones (what
  /// an empty ISA bus or unclaimed MMIO reads as) and a write is dropped;
  /// both count as unclaimed and return false.
  bool Read(uint64_t addr, absl::Span<uint8_t> data);
  bool Write(uint64_t addr, absl::Span<const uint8_t> data);

  /// Logs every access (kInfo) except those to [quiet_base, quiet_end):
  /// for debugging guests (ssihv-vmm --trace-io). Set before vCPUs run.
  void set_trace(bool on, uint64_t quiet_base = 0, uint64_t quiet_end = 0) {
    trace_ = on;
    quiet_base_ = quiet_base;
    quiet_end_ = quiet_end;
  }

  uint64_t unclaimed_accesses() const {
    return unclaimed_.load(std::memory_order_relaxed);
  }
  const std::string& name() const { return name_; }

 private:
  struct Entry {
    uint64_t base;
    uint64_t length;
    std::shared_ptr<BusDevice> device;
  };
  const Entry* Find(uint64_t addr, uint64_t len) const;

  std::string name_;
  std::vector<Entry> entries_;  // sorted by base, non-overlapping
  void Trace(const char* dir, uint64_t addr, absl::Span<const uint8_t> data,
             bool claimed) const;

  std::atomic<uint64_t> unclaimed_{0};
  bool trace_ = false;
  uint64_t quiet_base_ = 0;
  uint64_t quiet_end_ = 0;
};

}  // namespace ssihv::kvm

#endif  // SSIHV_KVM_BUS_H_
