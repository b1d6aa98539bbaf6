#include "node_wire.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace ssihv::vmm {
namespace {

// Little-endian field writer and a bounds-checked reader.
class Writer {
 public:
  Writer& U8(uint8_t v) {
    out_.push_back(v);
    return *this;
  }
  Writer& U32(uint32_t v) {
    for (int i = 0; i < 4; ++i)
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Writer& U64(uint64_t v) {
    for (int i = 0; i < 8; ++i)
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Writer& Bytes(absl::Span<const uint8_t> b) {
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  /// A 32-bit length, then at most `max` bytes of `text`.
  Writer& Text32(absl::string_view text, size_t max) {
    const size_t n = std::min(text.size(), max);
    return U32(static_cast<uint32_t>(n))
        .Bytes(absl::MakeConstSpan(
            reinterpret_cast<const uint8_t*>(text.data()), n));
  }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  Reader(absl::Span<const uint8_t> p, const char* what) : p_(p), what_(what) {}
  bool U8(uint8_t* v) { return Take(1, v); }
  bool U32(uint32_t* v) {
    uint8_t b[4];
    if (!Take(4, b)) return false;
    *v = 0;
    for (int i = 3; i >= 0; --i) *v = (*v << 8) | b[i];
    return true;
  }
  bool U64(uint64_t* v) {
    uint8_t b[8];
    if (!Take(8, b)) return false;
    *v = 0;
    for (int i = 7; i >= 0; --i) *v = (*v << 8) | b[i];
    return true;
  }
  bool Bytes(size_t n, uint8_t* out) { return Take(n, out); }
  /// The text that ends the message, `n` bytes as its length field said
  /// (read by the caller, with the header); `name` is for the error.
  absl::Status TrailingText(uint32_t n, size_t max, absl::string_view name,
                            std::string* out) {
    if (n > max) return Bad(absl::StrCat(name, " of ", n, " bytes"));
    if (left() != n) return Truncated();
    out->resize(n);
    Take(n, reinterpret_cast<uint8_t*>(out->data()));
    return absl::OkStatus();
  }
  size_t left() const { return p_.size() - pos_; }
  absl::Status Truncated() const {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": truncated (", p_.size(), " bytes)"));
  }
  absl::Status Done() const {
    if (left() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what_, ": ", left(), " trailing bytes"));
    }
    return absl::OkStatus();
  }
  absl::Status Bad(absl::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat(what_, ": ", why));
  }

 private:
  bool Take(size_t n, uint8_t* out) {
    if (left() < n) return false;
    if (n == 0) return true;  // an empty payload may have no data pointer
    std::memcpy(out, p_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  absl::Span<const uint8_t> p_;
  const char* what_;
  size_t pos_ = 0;
};

constexpr uint8_t kLevel = 1, kAssert = 2;
constexpr uint8_t kHwEnabled = 1, kSwEnabled = 2, kX2apic = 4;
// A message can name every vCPU of the largest cluster (4096), not more.
constexpr uint32_t kMaxDeliverVcpus = 4096;

absl::Status CheckVcpu(const Reader& r, uint32_t vcpu, uint32_t num_vcpus) {
  if (vcpu >= num_vcpus) {
    return r.Bad(absl::StrCat("vCPU ", vcpu, " out of range (the cluster has ",
                              num_vcpus, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<uint8_t> Encode(const DeliverMsg& m) {
  Writer w;
  w.U8(m.delivery.vector)
      .U8(static_cast<uint8_t>(m.delivery.mode))
      .U8((m.delivery.level_triggered ? kLevel : 0) |
          (m.delivery.assert ? kAssert : 0))
      .U32(static_cast<uint32_t>(m.vcpus.size()));
  for (uint32_t v : m.vcpus) w.U32(v);
  return w.Take();
}

absl::StatusOr<DeliverMsg> DecodeDeliver(absl::Span<const uint8_t> p,
                                         uint32_t num_vcpus) {
  Reader r(p, "deliver message");
  DeliverMsg m;
  uint8_t mode = 0, flags = 0;
  uint32_t count = 0;
  if (!r.U8(&m.delivery.vector) || !r.U8(&mode) || !r.U8(&flags) ||
      !r.U32(&count)) {
    return r.Truncated();
  }
  if (mode > 7) return r.Bad(absl::StrCat("delivery mode ", mode));
  if ((flags & ~(kLevel | kAssert)) != 0) {
    return r.Bad(absl::StrCat("flags 0x", absl::Hex(flags)));
  }
  if (count == 0 || count > kMaxDeliverVcpus || count > num_vcpus) {
    return r.Bad(absl::StrCat(count, " destination vCPUs"));
  }
  if (r.left() != size_t{4} * count) return r.Truncated();
  m.delivery.mode = static_cast<kvm::DeliveryMode>(mode);
  m.delivery.level_triggered = flags & kLevel;
  m.delivery.assert = flags & kAssert;
  m.vcpus.resize(count);
  for (uint32_t& v : m.vcpus) {
    r.U32(&v);
    if (absl::Status st = CheckVcpu(r, v, num_vcpus); !st.ok()) return st;
  }
  return m;
}

std::vector<uint8_t> Encode(const EoiMsg& m) {
  return Writer().U8(m.vector).Take();
}

absl::StatusOr<EoiMsg> DecodeEoi(absl::Span<const uint8_t> p) {
  Reader r(p, "EOI message");
  EoiMsg m;
  if (!r.U8(&m.vector)) return r.Truncated();
  if (absl::Status st = r.Done(); !st.ok()) return st;
  return m;
}

std::vector<uint8_t> Encode(const RoutingMsg& m) {
  const kvm::ApicRoutingEntry& e = m.entry;
  return Writer()
      .U32(m.vcpu)
      .U32(e.x2apic_id)
      .U8(e.xapic_id)
      .U8((e.hw_enabled ? kHwEnabled : 0) | (e.sw_enabled ? kSwEnabled : 0) |
          (e.x2apic ? kX2apic : 0))
      .U32(e.ldr)
      .U8(e.dfr_model)
      .U8(e.tpr)
      .Take();
}

absl::StatusOr<RoutingMsg> DecodeRouting(absl::Span<const uint8_t> p,
                                         uint32_t num_vcpus) {
  Reader r(p, "routing message");
  RoutingMsg m;
  kvm::ApicRoutingEntry& e = m.entry;
  uint8_t flags = 0;
  if (!r.U32(&m.vcpu) || !r.U32(&e.x2apic_id) || !r.U8(&e.xapic_id) ||
      !r.U8(&flags) || !r.U32(&e.ldr) || !r.U8(&e.dfr_model) || !r.U8(&e.tpr)) {
    return r.Truncated();
  }
  if (absl::Status st = r.Done(); !st.ok()) return st;
  if (absl::Status st = CheckVcpu(r, m.vcpu, num_vcpus); !st.ok()) return st;
  if ((flags & ~(kHwEnabled | kSwEnabled | kX2apic)) != 0) {
    return r.Bad(absl::StrCat("flags 0x", absl::Hex(flags)));
  }
  if (e.dfr_model != kvm::kDfrFlat && e.dfr_model != kvm::kDfrCluster) {
    return r.Bad(absl::StrCat("DFR model 0x", absl::Hex(e.dfr_model)));
  }
  e.hw_enabled = flags & kHwEnabled;
  e.sw_enabled = flags & kSwEnabled;
  e.x2apic = flags & kX2apic;
  return m;
}

std::vector<uint8_t> Encode(const IoMsg& m) {
  return Writer()
      .U8(static_cast<uint8_t>(m.space))
      .U8(m.is_write ? 1 : 0)
      .U8(m.size)
      .U64(m.addr)
      .Bytes(absl::MakeConstSpan(m.data.data(), m.is_write ? m.size : 0))
      .Take();
}

absl::StatusOr<IoMsg> DecodeIo(absl::Span<const uint8_t> p) {
  Reader r(p, "I/O message");
  IoMsg m;
  uint8_t space = 0, write = 0;
  if (!r.U8(&space) || !r.U8(&write) || !r.U8(&m.size) || !r.U64(&m.addr)) {
    return r.Truncated();
  }
  if (space > 1) return r.Bad(absl::StrCat("address space ", space));
  if (write > 1) return r.Bad(absl::StrCat("direction ", write));
  if (m.size != 1 && m.size != 2 && m.size != 4 && m.size != 8) {
    return r.Bad(absl::StrCat("access size ", m.size));
  }
  m.space = static_cast<IoSpace>(space);
  m.is_write = write;
  if (m.space == IoSpace::kPio && (m.addr > 0xffff || m.size > 4)) {
    return r.Bad(absl::StrCat("port 0x", absl::Hex(m.addr), " size ", m.size));
  }
  if (m.addr > UINT64_MAX - m.size) return r.Bad("address wraps");
  if (m.is_write && !r.Bytes(m.size, m.data.data())) return r.Truncated();
  if (absl::Status st = r.Done(); !st.ok()) return st;
  return m;
}

std::vector<uint8_t> EncodeIoResult(absl::Span<const uint8_t> read) {
  return Writer().U8(static_cast<uint8_t>(read.size())).Bytes(read).Take();
}

absl::StatusOr<std::vector<uint8_t>> DecodeIoResult(absl::Span<const uint8_t> p,
                                                    const IoMsg& request) {
  Reader r(p, "I/O result");
  uint8_t n = 0;
  if (!r.U8(&n)) return r.Truncated();
  const uint8_t want = request.is_write ? 0 : request.size;
  if (n != want) {
    return r.Bad(absl::StrCat(n, " bytes for a ", request.size, "-byte ",
                              request.is_write ? "write" : "read"));
  }
  std::vector<uint8_t> data(n);
  if (!r.Bytes(n, data.data())) return r.Truncated();
  if (absl::Status st = r.Done(); !st.ok()) return st;
  return data;
}

const char* StopKindName(StopKind kind) {
  switch (kind) {
    case StopKind::kPowerOff:
      return "guest power off";
    case StopKind::kReset:
      return "guest reset";
    case StopKind::kTripleFault:
      return "guest triple fault (reset)";
    case StopKind::kPanic:
      return "guest kernel panic";
    case StopKind::kError:
      return "error";
    case StopKind::kStopped:
      return "stopped";
    case StopKind::kPeerLost:
      return "peer node lost";
    case StopKind::kApiStop:
      return "api stop";
  }
  return "unknown";
}

std::vector<uint8_t> Encode(const StopMsg& m) {
  return Writer()
      .U8(static_cast<uint8_t>(m.kind))
      .U32(static_cast<uint32_t>(m.vcpu))
      .Text32(m.text, kMaxStopText)
      .Take();
}

absl::StatusOr<StopMsg> DecodeStop(absl::Span<const uint8_t> p) {
  Reader r(p, "stop message");
  StopMsg m;
  uint8_t kind = 0;
  uint32_t vcpu = 0, n = 0;
  if (!r.U8(&kind) || !r.U32(&vcpu) || !r.U32(&n)) return r.Truncated();
  if (kind > static_cast<uint8_t>(StopKind::kApiStop)) {
    return r.Bad(absl::StrCat("stop kind ", kind));
  }
  if (absl::Status st = r.TrailingText(n, kMaxStopText, "text", &m.text);
      !st.ok()) {
    return st;
  }
  m.kind = static_cast<StopKind>(kind);
  m.vcpu = static_cast<int32_t>(vcpu);
  return m;
}

const char* ActionKindName(ActionKind kind) {
  switch (kind) {
    case ActionKind::kPause:
      return "pause";
    case ActionKind::kResume:
      return "resume";
    case ActionKind::kStop:
      return "stop";
  }
  return "unknown";
}

std::vector<uint8_t> Encode(const ActionMsg& m) {
  return Writer().U8(static_cast<uint8_t>(m.action)).Take();
}

absl::StatusOr<ActionMsg> DecodeAction(absl::Span<const uint8_t> p) {
  Reader r(p, "action message");
  uint8_t action = 0;
  if (!r.U8(&action)) return r.Truncated();
  if (action > static_cast<uint8_t>(ActionKind::kStop)) {
    return r.Bad(absl::StrCat("action ", action));
  }
  if (absl::Status st = r.Done(); !st.ok()) return st;
  return ActionMsg{static_cast<ActionKind>(action)};
}

ActionResultMsg ToActionResult(const absl::Status& status) {
  ActionResultMsg m;
  m.code = static_cast<uint8_t>(status.code());
  m.message = std::string(status.message().substr(0, kMaxActionText));
  return m;
}

absl::Status FromActionResult(const ActionResultMsg& m) {
  return absl::Status(static_cast<absl::StatusCode>(m.code), m.message);
}

std::vector<uint8_t> Encode(const ActionResultMsg& m) {
  return Writer().U8(m.code).Text32(m.message, kMaxActionText).Take();
}

absl::StatusOr<ActionResultMsg> DecodeActionResult(
    absl::Span<const uint8_t> p) {
  Reader r(p, "action result");
  ActionResultMsg m;
  uint32_t n = 0;
  if (!r.U8(&m.code) || !r.U32(&n)) return r.Truncated();
  // absl's codes end at 16 (kUnauthenticated).
  if (m.code > static_cast<uint8_t>(absl::StatusCode::kUnauthenticated)) {
    return r.Bad(absl::StrCat("status code ", m.code));
  }
  if (absl::Status st =
          r.TrailingText(n, kMaxActionText, "message", &m.message);
      !st.ok()) {
    return st;
  }
  return m;
}

std::vector<uint8_t> Encode(const ClockMsg& m) {
  return Writer()
      .U64(m.kvmclock_ns)
      .U32(m.flags)
      .U64(m.realtime_ns)
      .Bytes(m.boot_id)
      .U8(m.has_tsc_offset ? 1 : 0)
      .U64(m.tsc_offset)
      .Take();
}

absl::StatusOr<ClockMsg> DecodeClock(absl::Span<const uint8_t> p) {
  Reader r(p, "clock message");
  ClockMsg m;
  uint8_t has = 0;
  if (!r.U64(&m.kvmclock_ns) || !r.U32(&m.flags) || !r.U64(&m.realtime_ns) ||
      !r.Bytes(m.boot_id.size(), m.boot_id.data()) || !r.U8(&has) ||
      !r.U64(&m.tsc_offset)) {
    return r.Truncated();
  }
  if (has > 1) return r.Bad(absl::StrCat("TSC offset flag ", has));
  m.has_tsc_offset = has;
  if (absl::Status st = r.Done(); !st.ok()) return st;
  return m;
}

std::vector<uint8_t> Encode(const HeartbeatMsg& m) {
  return Writer().U64(m.seq).Take();
}

absl::StatusOr<HeartbeatMsg> DecodeHeartbeat(absl::Span<const uint8_t> p) {
  Reader r(p, "heartbeat");
  HeartbeatMsg m;
  if (!r.U64(&m.seq)) return r.Truncated();
  if (absl::Status st = r.Done(); !st.ok()) return st;
  return m;
}

std::vector<uint8_t> Encode(const HelloMsg& m) {
  const size_t n = std::min<size_t>(m.host.size(), 255);
  return Writer()
      .U32(m.node)
      .Bytes(m.config_digest)
      .U32(m.pid)
      .U8(static_cast<uint8_t>(n))
      .Bytes(absl::MakeConstSpan(
          reinterpret_cast<const uint8_t*>(m.host.data()), n))
      .Take();
}

absl::StatusOr<HelloMsg> DecodeHello(absl::Span<const uint8_t> p) {
  Reader r(p, "hello message");
  HelloMsg m;
  uint8_t n = 0;
  if (!r.U32(&m.node) ||
      !r.Bytes(m.config_digest.size(), m.config_digest.data()) ||
      !r.U32(&m.pid) || !r.U8(&n)) {
    return r.Truncated();
  }
  // A one-byte length: never above 255.
  if (absl::Status st = r.TrailingText(n, 255, "host", &m.host); !st.ok()) {
    return st;
  }
  return m;
}

}  // namespace ssihv::vmm
