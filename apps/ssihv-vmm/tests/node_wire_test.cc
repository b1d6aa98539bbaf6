// The node messages: every message round-trips, and every malformed field
// from the network is refused with a message naming it.
#include "node_wire.h"

#include <catch2/catch.hpp>

namespace ssihv::vmm {
namespace {

using kvm::DeliveryMode;

TEST_CASE("deliver: round trip and refusals") {
  DeliverMsg m;
  m.delivery = {.vector = 0xec,
                .mode = DeliveryMode::kLowestPriority,
                .level_triggered = true,
                .assert = true};
  m.vcpus = {1, 5, 7};
  std::vector<uint8_t> b = Encode(m);
  auto d = DecodeDeliver(b, 8);
  REQUIRE(d.ok());
  CHECK(d->delivery == m.delivery);
  CHECK(d->vcpus == m.vcpus);

  CHECK_THAT(std::string(DecodeDeliver(b, 7).status().message()),
             Catch::Contains("vCPU 7 out of range"));
  std::vector<uint8_t> t(b.begin(), b.end() - 1);
  CHECK_THAT(std::string(DecodeDeliver(t, 8).status().message()),
             Catch::Contains("truncated"));
  std::vector<uint8_t> bad = b;
  bad[1] = 9;  // delivery mode
  CHECK_THAT(std::string(DecodeDeliver(bad, 8).status().message()),
             Catch::Contains("delivery mode 9"));
  bad = b;
  bad[2] = 0x80;  // unknown flag
  CHECK_FALSE(DecodeDeliver(bad, 8).ok());
  bad = b;
  bad[3] = 0;  // count 0
  bad[4] = bad[5] = bad[6] = 0;
  CHECK_THAT(std::string(DecodeDeliver(bad, 8).status().message()),
             Catch::Contains("0 destination vCPUs"));
  bad = b;
  bad[6] = 0x10;  // a huge count, not backed by bytes
  CHECK_FALSE(DecodeDeliver(bad, 1u << 31).ok());
}

TEST_CASE("routing: round trip and refusals") {
  RoutingMsg m;
  m.vcpu = 3;
  m.entry = {.x2apic_id = 300,
             .xapic_id = 3,
             .hw_enabled = true,
             .sw_enabled = true,
             .x2apic = true,
             .ldr = 0x10004,
             .dfr_model = kvm::kDfrCluster,
             .tpr = 0x20};
  std::vector<uint8_t> b = Encode(m);
  auto d = DecodeRouting(b, 4);
  REQUIRE(d.ok());
  CHECK(d->vcpu == 3);
  CHECK(d->entry == m.entry);
  CHECK_FALSE(DecodeRouting(b, 3).ok());
  std::vector<uint8_t> bad = b;
  bad[9] = 0x08;  // flags
  CHECK_FALSE(DecodeRouting(bad, 4).ok());
  bad = b;
  bad[14] = 0x5;  // DFR model
  CHECK_THAT(std::string(DecodeRouting(bad, 4).status().message()),
             Catch::Contains("DFR model"));
  bad = b;
  bad.push_back(0);
  CHECK_THAT(std::string(DecodeRouting(bad, 4).status().message()),
             Catch::Contains("trailing"));
}

TEST_CASE("I/O: reads and writes of each size, results checked") {
  for (uint8_t size : {1, 2, 4, 8}) {
    for (bool write : {false, true}) {
      IoMsg m;
      m.space = size == 8 ? IoSpace::kMmio : IoSpace::kPio;
      m.is_write = write;
      m.size = size;
      m.addr = size == 8 ? 0xfec00010 : 0x3f8;
      for (int i = 0; i < size; ++i) m.data[i] = static_cast<uint8_t>(i + 1);
      auto d = DecodeIo(Encode(m));
      REQUIRE(d.ok());
      CHECK(d->space == m.space);
      CHECK(d->is_write == write);
      CHECK(d->addr == m.addr);
      if (write) CHECK(d->data == m.data);
      std::vector<uint8_t> read(write ? 0 : size, 0xab);
      auto r = DecodeIoResult(EncodeIoResult(read), m);
      REQUIRE(r.ok());
      CHECK(*r == read);
      // A result of the wrong size is refused.
      std::vector<uint8_t> wrong(write ? 1 : size - 1 + 2, 0);
      CHECK_FALSE(DecodeIoResult(EncodeIoResult(wrong), m).ok());
    }
  }
}

TEST_CASE("I/O: refusals") {
  IoMsg m;
  m.size = 4;
  m.addr = 0x10000;  // beyond the port space
  CHECK_THAT(std::string(DecodeIo(Encode(m)).status().message()),
             Catch::Contains("port 0x10000"));
  m.addr = 0x3f8;
  m.size = 8;  // no 8-byte port access
  CHECK_FALSE(DecodeIo(Encode(m)).ok());
  m.size = 3;
  CHECK_THAT(std::string(DecodeIo(Encode(m)).status().message()),
             Catch::Contains("access size 3"));
  m.size = 8;
  m.space = IoSpace::kMmio;
  m.addr = UINT64_MAX - 3;
  CHECK_THAT(std::string(DecodeIo(Encode(m)).status().message()),
             Catch::Contains("wraps"));
  m.addr = 0;
  m.is_write = true;
  std::vector<uint8_t> b = Encode(m);
  b.pop_back();  // the written bytes cut short
  CHECK_THAT(std::string(DecodeIo(b).status().message()),
             Catch::Contains("truncated"));
}

TEST_CASE("stop, clock, EOI and heartbeat round trip; bad ones refused") {
  StopMsg s{StopKind::kPanic, 3, "Kernel panic - not syncing"};
  auto ds = DecodeStop(Encode(s));
  REQUIRE(ds.ok());
  CHECK(ds->kind == StopKind::kPanic);
  CHECK(ds->vcpu == 3);
  CHECK(ds->text == s.text);
  s.text.assign(5000, 'x');  // cut to the limit
  ds = DecodeStop(Encode(s));
  REQUIRE(ds.ok());
  CHECK(ds->text.size() == kMaxStopText);
  std::vector<uint8_t> bad = Encode(s);
  bad[0] = 8;
  CHECK_THAT(std::string(DecodeStop(bad).status().message()),
             Catch::Contains("stop kind 8"));
  bad[0] = static_cast<uint8_t>(StopKind::kApiStop);
  ds = DecodeStop(bad);
  REQUIRE(ds.ok());
  CHECK(ds->kind == StopKind::kApiStop);
  CHECK(std::string(StopKindName(StopKind::kApiStop)) == "api stop");

  ClockMsg c;
  c.kvmclock_ns = 123456789;
  c.flags = 6;
  c.realtime_ns = 1700000000000000000ull;
  c.boot_id[3] = 0x42;
  c.has_tsc_offset = true;
  c.tsc_offset = static_cast<uint64_t>(-987654321);
  auto dc = DecodeClock(Encode(c));
  REQUIRE(dc.ok());
  CHECK(dc->kvmclock_ns == c.kvmclock_ns);
  CHECK(dc->flags == 6);
  CHECK(dc->realtime_ns == c.realtime_ns);
  CHECK(dc->boot_id == c.boot_id);
  CHECK(dc->has_tsc_offset);
  CHECK(dc->tsc_offset == c.tsc_offset);

  auto de = DecodeEoi(Encode(EoiMsg{0x31}));
  REQUIRE(de.ok());
  CHECK(de->vector == 0x31);
  CHECK_FALSE(DecodeEoi({}).ok());
  auto dh = DecodeHeartbeat(Encode(HeartbeatMsg{77}));
  REQUIRE(dh.ok());
  CHECK(dh->seq == 77);
  CHECK_FALSE(DecodeHeartbeat(std::vector<uint8_t>(9)).ok());

  HelloMsg h{2, {}, 4242, "lab"};
  h.config_digest[31] = 0x7f;
  auto dh2 = DecodeHello(Encode(h));
  REQUIRE(dh2.ok());
  CHECK(dh2->node == 2);
  CHECK(dh2->config_digest == h.config_digest);
  CHECK(dh2->pid == 4242);
  CHECK(dh2->host == "lab");
  std::vector<uint8_t> hb = Encode(h);
  hb.push_back(1);
  CHECK_FALSE(DecodeHello(hb).ok());
}

TEST_CASE("action: round trip and refusals") {
  for (ActionKind k :
       {ActionKind::kPause, ActionKind::kResume, ActionKind::kStop}) {
    auto d = DecodeAction(Encode(ActionMsg{k}));
    REQUIRE(d.ok());
    CHECK(d->action == k);
  }
  CHECK(std::string(ActionKindName(ActionKind::kResume)) == "resume");
  CHECK_THAT(std::string(DecodeAction({}).status().message()),
             Catch::Contains("action message: truncated"));
  const std::vector<uint8_t> three = {3};
  CHECK_THAT(std::string(DecodeAction(three).status().message()),
             Catch::Contains("action 3"));
  const std::vector<uint8_t> trailing = {0, 0};
  CHECK_THAT(std::string(DecodeAction(trailing).status().message()),
             Catch::Contains("1 trailing bytes"));
}

TEST_CASE("action result: statuses round trip; bad ones refused") {
  const absl::Status err =
      absl::DeadlineExceededError("pause: vCPU 3 not out of KVM_RUN");
  auto d = DecodeActionResult(Encode(ToActionResult(err)));
  REQUIRE(d.ok());
  CHECK(FromActionResult(*d) == err);
  d = DecodeActionResult(Encode(ToActionResult(absl::OkStatus())));
  REQUIRE(d.ok());
  CHECK(FromActionResult(*d).ok());

  // A long message is cut to the limit, not refused.
  d = DecodeActionResult(
      Encode(ToActionResult(absl::InternalError(std::string(2000, 'x')))));
  REQUIRE(d.ok());
  CHECK(d->message.size() == kMaxActionText);

  std::vector<uint8_t> b = Encode(ToActionResult(err));
  std::vector<uint8_t> code = b;
  code[0] = 17;  // beyond absl's codes
  CHECK_THAT(std::string(DecodeActionResult(code).status().message()),
             Catch::Contains("status code 17"));
  std::vector<uint8_t> longer = b;
  longer[1] = 0xff;  // claims more text than there is
  longer[2] = 0x01;
  CHECK_THAT(std::string(DecodeActionResult(longer).status().message()),
             Catch::Contains("truncated"));
  std::vector<uint8_t> huge = b;
  huge[1] = 0x01;  // 513 > kMaxActionText
  huge[2] = 0x02;
  huge[3] = 0;
  huge[4] = 0;
  CHECK_THAT(std::string(DecodeActionResult(huge).status().message()),
             Catch::Contains("message of 513 bytes"));
  std::vector<uint8_t> cut(b.begin(), b.end() - 1);
  CHECK_THAT(std::string(DecodeActionResult(cut).status().message()),
             Catch::Contains("truncated"));
  CHECK_FALSE(DecodeActionResult(std::vector<uint8_t>(3)).ok());
}

}  // namespace
}  // namespace ssihv::vmm
