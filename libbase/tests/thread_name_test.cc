#include "ssihv/base/thread_name.h"

#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace ssihv::base {
namespace {

// Starts a thread, names it, and lets it report the name it sees.
std::string NameSeenBy(absl::string_view name) {
  std::mutex mu;
  std::condition_variable cv;
  bool named = false;
  std::string seen;
  std::thread t([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return named; });
    seen = CurrentThreadName();
  });
  NameThread(t, name);
  {
    std::lock_guard<std::mutex> lock(mu);
    named = true;
  }
  cv.notify_all();
  t.join();
  return seen;
}

TEST_CASE("NameThread: the thread sees its name") {
  CHECK(NameSeenBy("rdmax-data") == "rdmax-data");
}

TEST_CASE("NameThread: names longer than the kernel keeps are cut") {
  CHECK(NameSeenBy("a-very-long-thread-name") == "a-very-long-thr");
}

}  // namespace
}  // namespace ssihv::base
