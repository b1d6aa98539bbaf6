#include "ssihv/base/thread_priority.h"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <thread>

namespace ssihv::base {
namespace {

// Runs `body` on a new thread (which inherits our nice value), so the
// test's own thread keeps its value. No REQUIRE inside: it would throw on
// another thread.
template <typename F>
void OnNewThread(F body) {
  std::thread t(body);
  t.join();
}

// A value above ours (raising needs no privilege), or ours at the top.
int Higher(int nice) { return std::min(nice + 3, kMaxNice); }

TEST_CASE("a thread's nice value is its own") {
  auto before = CurrentThreadNice();
  REQUIRE(before.ok());
  absl::Status st;
  int seen = -100;
  OnNewThread([&] {
    st = SetCurrentThreadNice(Higher(*before));
    seen = CurrentThreadNice().value_or(-99);
  });
  CHECK(st.ok());
  CHECK(seen == Higher(*before));
  auto after = CurrentThreadNice();
  REQUIRE(after.ok());
  CHECK(*after == *before);  // the other thread's change is not ours
}

TEST_CASE("a nice value outside -20..19 is refused, naming it") {
  absl::Status st = SetCurrentThreadNice(20);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(st.message()).find("nice 20") != std::string::npos);
  CHECK(SetCurrentThreadNice(-21).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("lowering the nice value works with the privilege, else says so") {
  auto before = CurrentThreadNice();
  REQUIRE(before.ok());
  absl::Status st;
  int seen = 100;
  OnNewThread([&] {
    st = SetCurrentThreadNice(-5);
    seen = CurrentThreadNice().value_or(100);
  });
  if (::geteuid() == 0) {
    CHECK(st.ok());
    CHECK(seen == -5);
  } else {
    // Without CAP_SYS_NICE (a CI runner as a user): refused, unchanged.
    CHECK(st.code() == absl::StatusCode::kPermissionDenied);
    CHECK(seen == *before);
  }
}

TEST_CASE("ApplyServiceNice: 0 leaves the inherited value, else sets it") {
  auto before = CurrentThreadNice();
  REQUIRE(before.ok());
  int seen = -100;
  OnNewThread([&] {
    ApplyServiceNice(0);
    seen = CurrentThreadNice().value_or(-99);
  });
  CHECK(seen == *before);
  OnNewThread([&] {
    ApplyServiceNice(Higher(*before));
    seen = CurrentThreadNice().value_or(-99);
  });
  CHECK(seen == Higher(*before));
}

}  // namespace
}  // namespace ssihv::base
