// PageSource::ExpectsAnswers / AwaitAnswers: a source whose answers come
// from elsewhere takes them on the fault thread, and the pager's uffd (new
// faults, Stop()) ends the wait.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "ssihv/pager/pager.h"
#include "test_util.h"

namespace ssihv::pager {
namespace {

using testing::FillPattern;
using testing::HasPattern;

constexpr uint64_t kGpa = 0x200000;

// Parks every fault; AwaitAnswers answers them all on the fault thread when
// the test writes to `answer`, or returns when the pager's fd is readable.
class AnswerSource final : public PageSource {
 public:
  AnswerSource() { REQUIRE(::pipe2(answer_, O_CLOEXEC | O_NONBLOCK) == 0); }
  ~AnswerSource() override {
    ::close(answer_[0]);
    ::close(answer_[1]);
  }
  void OnFault(const Fault& f, Resolver& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    resolver_ = &r;
    parked_.push_back(f);
    fault_thread_ = std::this_thread::get_id();
    expecting_ = true;
    cv_.notify_all();
  }
  bool ExpectsAnswers() override { return expecting_; }
  void AwaitAnswers(int fd) override {
    expecting_ = false;
    if (fd < 0) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++waits_;
      cv_.notify_all();
    }
    struct pollfd p[2] = {{answer_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    REQUIRE(::poll(p, 2, 20000) > 0);
    std::lock_guard<std::mutex> lock(mu_);
    if (p[0].revents == 0) {
      ++interrupted_;
      expecting_ = !parked_.empty();  // asked again after the new batch
      cv_.notify_all();
      return;
    }
    char c;
    REQUIRE(::read(answer_[0], &c, 1) == 1);
    for (const Fault& f : parked_) {
      alignas(4096) uint8_t buf[kPageSize];
      FillPattern(buf, f.gpa);
      REQUIRE(resolver_->Copy(f, buf, false, FaultKind::kRemoteRead).ok());
      answered_on_.push_back(std::this_thread::get_id());
    }
    parked_.clear();
    cv_.notify_all();
  }
  std::string_view name() const override { return "answers"; }

  // Waits until `n` faults are parked and the fault thread waits.
  bool WaitParked(size_t n, int waits) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20),
                        [&] { return parked_.size() >= n && waits_ >= waits; });
  }
  void Answer() { REQUIRE(::write(answer_[1], "a", 1) == 1); }

  std::mutex mu_;
  std::condition_variable cv_;
  Resolver* resolver_ = nullptr;
  std::vector<Fault> parked_;
  std::thread::id fault_thread_;
  std::vector<std::thread::id> answered_on_;
  int waits_ = 0;
  int interrupted_ = 0;

 private:
  int answer_[2];
  bool expecting_ = false;  // the fault thread only
};

struct AnswerEnv {
  AnswerEnv() {
    auto m = GuestMemory::Create(8 * kPageSize);
    REQUIRE(m.ok());
    mem = *std::move(m);
    PagerOptions options;
    options.fault_threads = 1;
    auto p = Pager::Create(std::move(options));
    REQUIRE(p.ok());
    pager = *std::move(p);
    REQUIRE(pager->RegisterGuestMemory(mem, 0, mem.size(), kGpa).ok());
    REQUIRE(pager->SetSource(source).ok());
    REQUIRE(pager->Start().ok());
  }
  // Reads page `i` on a thread of its own (it blocks until answered).
  std::thread Reader(uint64_t i, std::atomic<bool>* ok) {
    return std::thread([this, i, ok] {
      *ok = HasPattern(mem.data() + i * kPageSize, kGpa + i * kPageSize);
    });
  }
  std::shared_ptr<AnswerSource> source = std::make_shared<AnswerSource>();
  GuestMemory mem;
  std::unique_ptr<Pager> pager;
};

TEST_CASE("await answers: the fault thread resolves its parked fault") {
  AnswerEnv env;
  std::atomic<bool> ok{false};
  std::thread reader = env.Reader(0, &ok);
  REQUIRE(env.source->WaitParked(1, 1));
  env.source->Answer();
  reader.join();
  CHECK(ok);
  std::lock_guard<std::mutex> lock(env.source->mu_);
  REQUIRE(env.source->answered_on_.size() == 1);
  CHECK(env.source->answered_on_[0] == env.source->fault_thread_);
  CHECK(env.source->interrupted_ == 0);
}

TEST_CASE("await answers: a new fault ends the wait, and is read") {
  AnswerEnv env;
  std::atomic<bool> ok0{false}, ok1{false};
  std::thread r0 = env.Reader(0, &ok0);
  REQUIRE(env.source->WaitParked(1, 1));
  // The second fault makes the uffd readable: the wait returns, the pager
  // reads the fault, and the source waits again for both.
  std::thread r1 = env.Reader(3, &ok1);
  REQUIRE(env.source->WaitParked(2, 2));
  env.source->Answer();
  r0.join();
  r1.join();
  CHECK(ok0);
  CHECK(ok1);
  std::lock_guard<std::mutex> lock(env.source->mu_);
  CHECK(env.source->interrupted_ == 1);
  CHECK(env.source->answered_on_.size() == 2);
}

TEST_CASE("await answers: Stop() ends the wait") {
  AnswerEnv env;
  std::atomic<bool> ok{false};
  std::thread reader = env.Reader(1, &ok);
  REQUIRE(env.source->WaitParked(1, 1));
  env.pager->Stop();  // returns: the sentinel touch interrupted the wait
  {
    std::lock_guard<std::mutex> lock(env.source->mu_);
    CHECK(env.source->interrupted_ == 1);
    REQUIRE(env.source->parked_.size() == 1);
    // The parked fault is still answerable from any thread.
    alignas(4096) uint8_t buf[kPageSize];
    FillPattern(buf, env.source->parked_[0].gpa);
    CHECK(env.pager->resolver()
              .Copy(env.source->parked_[0], buf, false, FaultKind::kRemoteRead)
              .ok());
  }
  reader.join();
  CHECK(ok);
}

}  // namespace
}  // namespace ssihv::pager
