#include "ssihv/pager/pager.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "ssihv/base/thread_priority.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::FillPattern;
using testing::HasPattern;
using testing::IsZero;
using testing::Settled;

constexpr uint64_t kGpaBase = 0x100000;

/// A source whose behaviour each test supplies.
class FnSource final : public PageSource {
 public:
  using FaultFn = std::function<void(const Fault&, Resolver&)>;
  explicit FnSource(FaultFn fn) : fn_(std::move(fn)) {}
  void OnFault(const Fault& f, Resolver& r) override { fn_(f, r); }
  void OnRemove(uint64_t gpa, uint64_t len) override {
    std::lock_guard<std::mutex> lock(mu);
    removed.emplace_back(gpa, len);
  }
  std::string_view name() const override { return "test"; }

  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> removed;

 private:
  FaultFn fn_;
};

/// Copies the gpa pattern into every faulting page, writable.
FnSource::FaultFn PatternCopy(bool read_only = false) {
  return [read_only](const Fault& f, Resolver& r) {
    if (f.access == FaultAccess::kWriteProtect) {
      if (absl::Status st = r.Unprotect(f); !st.ok()) r.Fail(f, st);
      return;
    }
    alignas(4096) uint8_t buf[kPageSize];
    FillPattern(buf, f.gpa);
    absl::Status st = r.Copy(f, buf, read_only, FaultKind::kLocalCopy);
    if (!st.ok()) r.Fail(f, st);
  };
}

struct Env {
  explicit Env(uint64_t pages, int fault_threads = 1,
               Backing backing = Backing::kAnonymous,
               bool remove_events = true) {
    auto m = GuestMemory::Create(pages * kPageSize, backing);
    REQUIRE(m.ok());
    mem = *std::move(m);
    PagerOptions opts;
    opts.fault_threads = fault_threads;
    opts.remove_events = remove_events;
    opts.on_error = [this](const absl::Status& st) {
      std::lock_guard<std::mutex> lock(mu);
      errors.push_back(std::string(st.message()));
    };
    auto p = Pager::Create(std::move(opts));
    REQUIRE(p.ok());
    pager = *std::move(p);
    REQUIRE(pager->RegisterGuestMemory(mem, 0, mem.size(), kGpaBase).ok());
  }
  void Start(std::shared_ptr<PageSource> source) {
    REQUIRE(pager->SetSource(std::move(source)).ok());
    REQUIRE(pager->Start().ok());
  }
  uint8_t* Page(uint64_t i) { return mem.data() + i * kPageSize; }
  uint64_t Gpa(uint64_t i) { return kGpaBase + i * kPageSize; }

  // Declared before the pager, so destroyed after it: a fault thread may
  // still report an error until the pager's destructor stops it (a race
  // ThreadSanitizer found in the release test).
  GuestMemory mem;
  std::mutex mu;
  std::vector<std::string> errors;
  std::unique_ptr<Pager> pager;
};

uint64_t Count(const PagerStats& s, FaultKind k) {
  return s.faults[static_cast<size_t>(k)];
}

TEST_CASE("Zero source: reads map the zero page, writes a zeroed page") {
  Env env(64);
  env.Start(std::make_shared<ZeroSource>());
  for (uint64_t i = 0; i < 32; ++i) REQUIRE(IsZero(env.Page(i)));
  for (uint64_t i = 32; i < 64; ++i) {
    *reinterpret_cast<volatile uint64_t*>(env.Page(i) + 16) = i;
  }
  // A written zero page COWs in the kernel: no second uffd fault.
  *reinterpret_cast<volatile uint64_t*>(env.Page(0)) = 5;
  PagerStats s = Settled(*env.pager);
  CHECK(Count(s, FaultKind::kLocalZero) == 64);
  CHECK(s.messages == 64);
  CHECK(s.errors == 0);
  CHECK(s.all.count == 64);
  CHECK(s.all.max_us > 0);
  for (uint64_t i = 32; i < 64; ++i) {
    CHECK(*reinterpret_cast<uint64_t*>(env.Page(i) + 16) == i);
  }
}

TEST_CASE("Copy source: bytes land at the faulting page with its GPA") {
  Env env(32, 2);
  env.Start(std::make_shared<FnSource>(PatternCopy()));
  for (uint64_t i = 0; i < 32; i += 3)
    REQUIRE(HasPattern(env.Page(i), env.Gpa(i)));
  PagerStats s = Settled(*env.pager);
  CHECK(Count(s, FaultKind::kLocalCopy) == 11);
  CHECK(Count(s, FaultKind::kLocalZero) == 0);
}

TEST_CASE("Kernel-mode accesses fault to the pager too (no USER_MODE_ONLY)") {
  // read(2) into guest memory is a copy_to_user from kernel mode, as KVM's
  // own accesses to guest RAM are; with UFFD_USER_MODE_ONLY it would EFAULT.
  Env env(4);
  env.Start(std::make_shared<ZeroSource>());
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const char msg[] = "through the kernel";
  REQUIRE(::write(fds[1], msg, sizeof(msg)) == sizeof(msg));
  REQUIRE(::read(fds[0], env.Page(2) + 100, sizeof(msg)) == sizeof(msg));
  ::close(fds[0]);
  ::close(fds[1]);
  CHECK(std::string(reinterpret_cast<char*>(env.Page(2) + 100)) == msg);
  CHECK(Count(Settled(*env.pager), FaultKind::kLocalZero) == 1);
}

TEST_CASE("Read-only copies trap the first write, which upgrades in place") {
  Env env(8);
  env.Start(std::make_shared<FnSource>(PatternCopy(/*read_only=*/true)));
  REQUIRE(HasPattern(env.Page(1), env.Gpa(1)));
  *reinterpret_cast<volatile uint64_t*>(env.Page(1)) = 77;  // WP fault
  CHECK(*reinterpret_cast<uint64_t*>(env.Page(1)) == 77);
  CHECK(*reinterpret_cast<uint64_t*>(env.Page(1) + 8) == env.Gpa(1) + 8);
  // Writing a missing page: one fault maps it read-only, the retry faults WP.
  *reinterpret_cast<volatile uint64_t*>(env.Page(2)) = 78;
  PagerStats s = Settled(*env.pager);
  CHECK(Count(s, FaultKind::kLocalCopy) == 2);
  CHECK(Count(s, FaultKind::kUpgrade) == 2);
}

TEST_CASE("Resolver::WriteProtect makes a present page trap writes again") {
  Env env(4);
  env.Start(std::make_shared<FnSource>(PatternCopy()));
  *reinterpret_cast<volatile uint64_t*>(env.Page(0)) = 1;
  REQUIRE(env.pager->resolver().WriteProtect(env.Gpa(0), kPageSize).ok());
  CHECK(*reinterpret_cast<volatile uint64_t*>(env.Page(0)) == 1);  // reads ok
  *reinterpret_cast<volatile uint64_t*>(env.Page(0)) = 2;
  CHECK(Count(Settled(*env.pager), FaultKind::kUpgrade) == 1);
  CHECK(*reinterpret_cast<uint64_t*>(env.Page(0)) == 2);
}

TEST_CASE("Two faults on one page: the second resolution is an EEXIST race") {
  // The source holds the first fault back until the second arrives, then
  // resolves both: exactly one copy installs, the other finds the page.
  Env env(4, 2);
  std::mutex mu;
  std::vector<Fault> held;
  std::atomic<int> installed{0};
  env.Start(std::make_shared<FnSource>([&](const Fault& f, Resolver& r) {
    std::vector<Fault> both;
    {
      std::lock_guard<std::mutex> lock(mu);
      held.push_back(f);
      if (held.size() < 2) return;
      both.swap(held);
    }
    alignas(4096) uint8_t buf[kPageSize];
    FillPattern(buf, f.gpa);
    for (const Fault& h : both) {
      bool ok = false;
      if (absl::Status st = r.Copy(h, buf, false, FaultKind::kLocalCopy, &ok);
          !st.ok()) {
        r.Fail(h, st);
      }
      installed += ok;
    }
  }));
  std::atomic<int> bad{0};
  std::vector<std::thread> touchers;
  for (int t = 0; t < 2; ++t) {
    touchers.emplace_back([&] { bad += !HasPattern(env.Page(3), env.Gpa(3)); });
  }
  for (auto& t : touchers) t.join();
  CHECK(bad == 0);
  PagerStats s = Settled(*env.pager);
  CHECK(installed == 1);
  CHECK(s.messages == 2);
  CHECK(s.eexist_races == 1);
  CHECK(Count(s, FaultKind::kLocalCopy) == 1);
}

TEST_CASE("Many threads racing on shared pages: every page installed once") {
  constexpr uint64_t kPages = 256;
  constexpr int kThreads = 8;
  Env env(kPages, 4);
  env.Start(std::make_shared<FnSource>(PatternCopy()));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint64_t> order(kPages);
      for (uint64_t i = 0; i < kPages; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937(t));
      for (uint64_t i : order) bad += !HasPattern(env.Page(i), env.Gpa(i));
    });
  }
  for (auto& t : threads) t.join();
  PagerStats s = Settled(*env.pager);
  CHECK(bad == 0);
  CHECK(Count(s, FaultKind::kLocalCopy) == kPages);
  CHECK(s.messages == Count(s, FaultKind::kLocalCopy) + s.eexist_races);
  CHECK(s.errors == 0);
}

TEST_CASE("A discarded page comes back as the source says, not stale") {
  Env env(16, 2);
  auto source = std::make_shared<FnSource>(PatternCopy());
  env.Start(source);
  for (uint64_t i = 0; i < 16; ++i) {
    REQUIRE(HasPattern(env.Page(i), env.Gpa(i)));
    *reinterpret_cast<volatile uint64_t*>(env.Page(i)) = 0xdead;
  }
  REQUIRE(env.pager->resolver().Discard(env.Gpa(4), 4 * kPageSize).ok());
  // Discarded pages fault again and are re-fetched; the rest keep the write.
  for (uint64_t i = 0; i < 16; ++i) {
    const uint64_t first = *reinterpret_cast<volatile uint64_t*>(env.Page(i));
    CHECK(first == ((i >= 4 && i < 8) ? env.Gpa(i) : 0xdead));
  }
  PagerStats s = Settled(*env.pager);
  CHECK(s.remove_events == 1);
  CHECK(s.removed_bytes == 4 * kPageSize);
  CHECK(Count(s, FaultKind::kLocalCopy) == 20);
  std::lock_guard<std::mutex> lock(source->mu);
  REQUIRE(source->removed.size() == 1);
  CHECK(source->removed[0] == std::make_pair(env.Gpa(4), 4 * kPageSize));
}

TEST_CASE("Zero source after a foreign MADV_DONTNEED: zeros, never old data") {
  Env env(8);
  env.Start(std::make_shared<ZeroSource>());
  for (uint64_t i = 0; i < 8; ++i) {
    *reinterpret_cast<volatile uint64_t*>(env.Page(i) + 64) = 0x1234 + i;
  }
  // Not through the pager: the VMM (a balloon) or the guest's own madvise.
  REQUIRE(::madvise(env.Page(0), 8 * kPageSize, MADV_DONTNEED) == 0);
  for (uint64_t i = 0; i < 8; ++i) CHECK(IsZero(env.Page(i)));
  PagerStats s = Settled(*env.pager);
  CHECK(s.remove_events == 1);
  CHECK(Count(s, FaultKind::kLocalZero) == 16);
}

TEST_CASE(
    "Discards racing faults on one fault thread: no hang, no stale page") {
  // MADV_DONTNEED blocks until the REMOVE event is read, and meanwhile every
  // UFFDIO_COPY answers EAGAIN; with one fault thread, that thread must read
  // the event itself while it retries (Resolver::RetryEagain).
  constexpr uint64_t kPages = 64;
  Env env(kPages, 1);
  env.Start(std::make_shared<FnSource>(PatternCopy()));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(t);
      while (!stop) {
        const uint64_t i = rng() % kPages;
        bad += !HasPattern(env.Page(i), env.Gpa(i));
      }
    });
  }
  std::mt19937 rng(99);
  for (int round = 0; round < 300; ++round) {
    const uint64_t first = rng() % kPages;
    const uint64_t count = 1 + rng() % (kPages - first);
    REQUIRE(
        env.pager->resolver().Discard(env.Gpa(first), count * kPageSize).ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  PagerStats s = Settled(*env.pager);
  CHECK(bad == 0);
  CHECK(s.remove_events == 300);
  CHECK(s.errors == 0);
}

TEST_CASE(
    "Discard works on a fault thread (one thread) and not while stopped") {
  // The only fault thread discards another page from inside OnFault: the
  // REMOVE event must still be read, or madvise never returns.
  Env env(4, 1);
  std::atomic<int> discarded{0};
  std::atomic<int> failed{0};
  env.Start(std::make_shared<FnSource>([&](const Fault& f, Resolver& r) {
    if (f.gpa == env.Gpa(1)) {
      failed += !r.Discard(env.Gpa(0), kPageSize).ok();
      ++discarded;
    }
    if (absl::Status z = r.ZeroFill(f); !z.ok()) r.Fail(f, z);
  }));
  *reinterpret_cast<volatile uint64_t*>(env.Page(0)) = 5;
  *reinterpret_cast<volatile uint64_t*>(env.Page(1)) = 6;  // discards page 0
  CHECK(discarded == 1);
  CHECK(failed == 0);
  CHECK(IsZero(env.Page(0)));  // faulted again: zero, not the 5
  CHECK(Settled(*env.pager).remove_events == 1);
  env.pager->Stop();
  CHECK(absl::IsFailedPrecondition(
      env.pager->resolver().Discard(env.Gpa(0), kPageSize)));
}

TEST_CASE("Without REMOVE events a discard is one madvise, anywhere") {
  // PagerOptions::remove_events = false (the DSM node): the page still
  // faults again, the source hears nothing, and a fault thread or a stopped
  // pager discards directly (no event for anyone to read).
  Env env(4, 1, Backing::kAnonymous, /*remove_events=*/false);
  CHECK((env.pager->features() & UFFD_FEATURE_EVENT_REMOVE) == 0);
  auto source = std::make_shared<FnSource>([&](const Fault& f, Resolver& r) {
    if (f.gpa == env.Gpa(2)) {
      if (absl::Status d = r.Discard(env.Gpa(0), kPageSize); !d.ok()) {
        r.Fail(f, d);
        return;
      }
    }
    PatternCopy()(f, r);
  });
  env.Start(source);
  *reinterpret_cast<volatile uint64_t*>(env.Page(0)) = 5;
  *reinterpret_cast<volatile uint64_t*>(env.Page(1)) = 6;
  REQUIRE(env.pager->resolver().Discard(env.Gpa(1), kPageSize).ok());
  CHECK(HasPattern(env.Page(1), env.Gpa(1)));  // faulted again, not the 6
  CHECK(HasPattern(env.Page(2), env.Gpa(2)));  // its fault discarded page 0
  CHECK(HasPattern(env.Page(0), env.Gpa(0)));  // not the 5
  PagerStats s = Settled(*env.pager);
  CHECK(s.remove_events == 0);
  CHECK(s.errors == 0);
  CHECK(Count(s, FaultKind::kLocalCopy) == 5);
  {
    std::lock_guard<std::mutex> lock(source->mu);
    CHECK(source->removed.empty());
  }
  env.pager->Stop();
  CHECK(env.pager->resolver().Discard(env.Gpa(0), kPageSize).ok());
}

// Fault threads sleep in read(2); Stop() wakes them through sentinel pages.
// With several threads, some blocked in read, some waiting for the reader
// role, some busy, every cycle must end with all of them joined.
TEST_CASE("Stop joins every fault thread, busy or blocked in read") {
  for (int threads : {1, 2, 4}) {
    Env env(64, threads);
    env.Start(std::make_shared<ZeroSource>());
    for (int cycle = 0; cycle < 10; ++cycle) {
      std::vector<std::thread> touchers;
      for (int t = 0; t < threads; ++t) {
        touchers.emplace_back([&, t] {
          for (int p = t; p < 64; p += threads) {
            *reinterpret_cast<volatile uint8_t*>(env.Page(p)) = 1;
          }
        });
      }
      for (auto& t : touchers) t.join();
      env.pager->Stop();
      CHECK(!env.pager->running());
      REQUIRE(env.pager->Start().ok());
      REQUIRE(env.pager->resolver().Discard(env.Gpa(0), 64 * kPageSize).ok());
    }
    CHECK(Settled(*env.pager).faults[0] == 640);  // every touch was a fault
  }
}

TEST_CASE("Stop leaves a fault pending; Start serves it") {
  Env env(4);
  env.Start(std::make_shared<ZeroSource>());
  env.pager->Stop();
  CHECK(!env.pager->running());
  std::atomic<bool> done{false};
  std::thread toucher = testing::StartBlockedAccess([&] {
    *reinterpret_cast<volatile uint8_t*>(env.Page(1)) = 3;
    done = true;
  });
  CHECK(!done);
  REQUIRE(env.pager->Start().ok());
  toucher.join();
  CHECK(env.Page(1)[0] == 3);
  // Stop/Start cycles are repeatable.
  env.pager->Stop();
  env.pager->Stop();
  REQUIRE(env.pager->Start().ok());
  CHECK(IsZero(env.Page(2)));
  CHECK(Count(Settled(*env.pager), FaultKind::kLocalZero) == 2);
}

TEST_CASE("A source error is reported; the fault can still be resolved later") {
  Env env(4);
  std::atomic<int> calls{0};
  env.Start(std::make_shared<FnSource>([&](const Fault& f, Resolver& r) {
    ++calls;
    r.Fail(f, absl::DataLossError("image unreadable"));
  }));
  std::thread toucher = testing::StartBlockedAccess(
      [&] { (void)*reinterpret_cast<volatile uint8_t*>(env.Page(2)); });
  REQUIRE(testing::WaitFor([&] {
    std::lock_guard<std::mutex> lock(env.mu);
    return !env.errors.empty();
  }));
  {
    std::lock_guard<std::mutex> lock(env.mu);
    REQUIRE(env.errors.size() == 1);
    CHECK(env.errors[0].find("gpa=0x102000") != std::string::npos);
    CHECK(env.errors[0].find("image unreadable") != std::string::npos);
  }
  CHECK(Settled(*env.pager).errors == 1);
  alignas(4096) uint8_t buf[kPageSize] = {};
  bool installed = false;
  REQUIRE(
      env.pager->resolver().CopyPage(env.Gpa(2), buf, false, &installed).ok());
  CHECK(installed);
  toucher.join();
}

TEST_CASE("ReleaseFailedFaults returns the threads failed faults block") {
  Env env(8);
  env.Start(std::make_shared<FnSource>([](const Fault& f, Resolver& r) {
    r.Fail(f, absl::DataLossError("page lost"));
  }));
  alignas(4096) uint8_t pattern[kPageSize];
  FillPattern(pattern, 4);
  REQUIRE(env.pager->resolver().CopyPage(env.Gpa(4), pattern, true).ok());
  std::atomic<int> done{0};
  std::atomic<pid_t> tids[3] = {};
  uint8_t read_byte = 0xff;
  auto touch = [&](int i, std::function<void()> access) {
    return std::thread([&, i, access] {
      tids[i] = testing::CurrentTid();
      access();
      ++done;
    });
  };
  std::thread reader = touch(0, [&] {
    read_byte = *reinterpret_cast<volatile uint8_t*>(env.Page(2) + 7);
  });
  std::thread writer = touch(
      1, [&] { *reinterpret_cast<volatile uint8_t*>(env.Page(3) + 9) = 0x5a; });
  std::thread upgrader = touch(2, [&] {  // write-protect fault
    *reinterpret_cast<volatile uint8_t*>(env.Page(4)) = 0xa5;
  });
  for (auto& tid : tids) {
    while (tid == 0) std::this_thread::yield();
    REQUIRE(testing::WaitUntilBlockedInUffd(tid));
  }
  REQUIRE(testing::WaitFor([&] { return Settled(*env.pager).errors == 3; }));
  CHECK(done == 0);  // failed faults stay blocked until the release
  env.pager->ReleaseFailedFaults();
  REQUIRE(testing::WaitFor([&] { return done == 3; }));
  reader.join();
  writer.join();
  upgrader.join();
  CHECK(read_byte == 0);
  CHECK(env.Page(3)[9] == 0x5a);
  CHECK(env.Page(4)[0] == 0xa5);  // unprotected: the write landed, in place
  CHECK(std::equal(env.Page(4) + 1, env.Page(4) + kPageSize, pattern + 1));
  // After the release a failed fault is released at once.
  std::thread late = touch(
      0, [&] { (void)*reinterpret_cast<volatile uint8_t*>(env.Page(6)); });
  REQUIRE(testing::WaitFor([&] { return done == 4; }));
  late.join();
  // ... with the rest of its block: page 7 reads zeros without a fault.
  const uint64_t errors_before = Settled(*env.pager).errors;
  CHECK(IsZero(env.Page(7)));
  CHECK(Settled(*env.pager).errors == errors_before);
  const PagerStats s = Settled(*env.pager);
  // Every failed fault was released (a woken thread may re-fault first).
  CHECK(s.errors >= 4);
  CHECK(s.released == s.errors);
  env.pager->ReleaseFailedFaults();  // idempotent
  CHECK(env.pager->Stats().released == s.released);
}

TEST_CASE("Registration and start errors are clear") {
  auto p = Pager::Create({});
  REQUIRE(p.ok());
  Pager& pager = **p;
  CHECK(absl::IsFailedPrecondition(pager.Start()));  // no source
  auto mem = GuestMemory::Create(8 * kPageSize);
  REQUIRE(mem.ok());
  absl::Status st = pager.RegisterRegion({mem->data() + 1, kPageSize, 0});
  CHECK(absl::IsInvalidArgument(st));
  CHECK(st.message().find("aligned") != absl::string_view::npos);
  REQUIRE(pager.RegisterRegion({mem->data(), 4 * kPageSize, 0}).ok());
  st = pager.RegisterRegion(
      {mem->data() + 4 * kPageSize, 4 * kPageSize, 2 * kPageSize});
  CHECK(absl::IsInvalidArgument(st));
  CHECK(st.message().find("overlaps") != absl::string_view::npos);
  CHECK(absl::IsInvalidArgument(
      pager.RegisterGuestMemory(*mem, 0, 16 * kPageSize, 0)));
  REQUIRE(pager.SetSource(std::make_shared<ZeroSource>()).ok());
  REQUIRE(pager.Start().ok());
  CHECK(absl::IsFailedPrecondition(pager.RegisterRegion(
      {mem->data() + 4 * kPageSize, kPageSize, 0x100000})));
  CHECK(absl::IsFailedPrecondition(pager.SetSource(nullptr)));
  CHECK(pager.Describe().find("zero") != std::string::npos);
  PagerOptions zero_threads;
  zero_threads.fault_threads = 0;
  CHECK(absl::IsInvalidArgument(Pager::Create(zero_threads).status()));
}

TEST_CASE("Fault threads run at PagerOptions::thread_nice") {
  auto inherited = base::CurrentThreadNice();
  REQUIRE(inherited.ok());
  auto mem = GuestMemory::Create(4 * kPageSize);
  REQUIRE(mem.ok());
  PagerOptions options;
  options.thread_nice = std::min(*inherited + 3, base::kMaxNice);
  auto p = Pager::Create(options);
  REQUIRE(p.ok());
  REQUIRE((*p)->RegisterGuestMemory(*mem, 0, 4 * kPageSize, 0).ok());
  std::atomic<int> seen{-100};
  FnSource::FaultFn copy = PatternCopy();
  REQUIRE((*p)->SetSource(
                  std::make_shared<FnSource>([&](const Fault& f, Resolver& r) {
                    seen = base::CurrentThreadNice().value_or(-99);
                    copy(f, r);
                  }))
              .ok());
  REQUIRE((*p)->Start().ok());
  CHECK(HasPattern(mem->data() + kPageSize, kPageSize));  // faults
  CHECK(seen == options.thread_nice);
  CHECK(*base::CurrentThreadNice() == *inherited);  // ours is unchanged
  PagerOptions bad;
  bad.thread_nice = 20;
  absl::Status st = Pager::Create(bad).status();
  CHECK(absl::IsInvalidArgument(st));
  CHECK_THAT(std::string(st.message()), Catch::Contains("thread_nice"));
}

TEST_CASE("Two regions map to their own GPAs (RAM split by the MMIO hole)") {
  auto mem = GuestMemory::Create(8 * kPageSize);
  REQUIRE(mem.ok());
  auto p = Pager::Create({});
  REQUIRE(p.ok());
  constexpr uint64_t kHigh = uint64_t{4} << 30;
  REQUIRE((*p)->RegisterGuestMemory(*mem, 0, 4 * kPageSize, 0).ok());
  REQUIRE((*p)->RegisterGuestMemory(*mem, 4 * kPageSize, 4 * kPageSize, kHigh)
              .ok());
  REQUIRE((*p)->SetSource(std::make_shared<FnSource>(PatternCopy())).ok());
  REQUIRE((*p)->Start().ok());
  CHECK(HasPattern(mem->data() + kPageSize, kPageSize));
  CHECK(HasPattern(mem->data() + 5 * kPageSize, kHigh + kPageSize));
  CHECK((*p)->resolver().HostAddress(kHigh + 8) ==
        mem->data() + 4 * kPageSize + 8);
  CHECK((*p)->resolver().HostAddress(4 * kPageSize) == nullptr);
}

TEST_CASE(
    "Memfd backing: faults, a second mapping sees the bytes, discard punches") {
  Env env(8, 1, Backing::kMemfd);
  env.Start(std::make_shared<FnSource>(PatternCopy()));
  REQUIRE(HasPattern(env.Page(3), env.Gpa(3)));
  *reinterpret_cast<volatile uint64_t*>(env.Page(3)) = 99;
  // Another mapping of the memfd (a snapshot writer) sees the same page.
  auto view =
      base::MappedRegion::Shared(env.mem.memfd(), env.mem.size(), 0, PROT_READ);
  REQUIRE(view.ok());
  CHECK(*reinterpret_cast<uint64_t*>(view->data() + 3 * kPageSize) == 99);
  REQUIRE(env.pager->resolver().Discard(env.Gpa(3), kPageSize).ok());
  CHECK(HasPattern(env.Page(3), env.Gpa(3)));  // re-fetched, not the 99
  CHECK(Settled(*env.pager).remove_events == 1);
  CHECK(Count(Settled(*env.pager), FaultKind::kLocalCopy) == 2);
}

TEST_CASE("ZeroFillRange maps the missing pages and leaves mapped ones alone") {
  Env env(16);
  env.Start(std::make_shared<ZeroSource>());
  *reinterpret_cast<volatile uint64_t*>(env.Page(2)) = 22;
  *reinterpret_cast<volatile uint64_t*>(env.Page(5)) = 55;
  auto filled = env.pager->resolver().ZeroFillRange(env.Gpa(0), 8 * kPageSize);
  REQUIRE(filled.ok());
  CHECK(*filled == 6);
  CHECK(*reinterpret_cast<uint64_t*>(env.Page(2)) == 22);
  CHECK(*reinterpret_cast<uint64_t*>(env.Page(5)) == 55);
  for (uint64_t i = 0; i < 8; ++i) {  // no fault: already mapped, writable
    *reinterpret_cast<volatile uint64_t*>(env.Page(i) + 8) = i;
  }
  auto ro = env.pager->resolver().ZeroFillRange(env.Gpa(8), 8 * kPageSize,
                                                /*writable=*/false);
  REQUIRE(ro.ok());
  CHECK(*ro == 8);
  for (uint64_t i = 8; i < 16; ++i) CHECK(IsZero(env.Page(i)));
  *reinterpret_cast<volatile uint64_t*>(env.Page(9)) = 9;  // kernel COW
  PagerStats s = Settled(*env.pager);
  CHECK(Count(s, FaultKind::kLocalZero) == 2);
  CHECK(s.filled_ahead == 14);
  CHECK(absl::IsInvalidArgument(env.pager->resolver()
                                    .ZeroFillRange(env.Gpa(8), 16 * kPageSize)
                                    .status()));
}

TEST_CASE("Zero source with fault-around: one fault per block") {
  Env env(64, 2);
  env.Start(std::make_shared<ZeroSource>(16 * kPageSize));  // 64 KiB blocks
  *reinterpret_cast<volatile uint64_t*>(env.Page(19)) = 1;  // block 16..31
  REQUIRE(testing::WaitFor([&] {  // filled after the fault resumed
    return env.pager->Stats().filled_ahead == 15;
  }));
  for (uint64_t i = 16; i < 32; ++i) {
    *reinterpret_cast<volatile uint64_t*>(env.Page(i) + 8) = i;
  }
  CHECK(Count(Settled(*env.pager), FaultKind::kLocalZero) == 1);
  CHECK(*reinterpret_cast<uint64_t*>(env.Page(19)) == 1);
  CHECK(ZeroSource(3 * kPageSize).fault_around() == 0);  // not a power of 2
  CHECK(ZeroSource(kPageSize).fault_around() == 0);
}

TEST_CASE("Stats JSON after real faults") {
  Env env(4);
  env.Start(std::make_shared<ZeroSource>());
  for (uint64_t i = 0; i < 4; ++i) (void)IsZero(env.Page(i));
  nlohmann::json j = ToJson(Settled(*env.pager));
  CHECK(j["faults"]["local_zero"] == 4);
  CHECK(j["latency_us"]["local_zero"]["count"] == 4);
  CHECK(j["latency_us"]["local_zero"]["max"].get<double>() > 0);
  CHECK(j["latency_us"]["local_zero"]["p50"].get<double>() <=
        j["latency_us"]["local_zero"]["max"].get<double>());
  env.pager->ResetStats();
  CHECK(Settled(*env.pager).total_faults() == 0);
}

}  // namespace
}  // namespace ssihv::pager
