// The C API (<ssihv/pager.h>): errors as codes and messages, every source,
// a userfaultfd created elsewhere, the error callback. capi_smoke.c drives
// it from C.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "ssihv/base/file_util.h"
#include "ssihv/pager.h"
#include "test_util.h"

extern "C" int ssihv_capi_smoke(char* err, size_t err_len);

namespace {

constexpr uint64_t kPage = 4096;

struct Ram {
  explicit Ram(uint64_t size) : size(size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(p != MAP_FAILED);
    data = static_cast<uint8_t*>(p);
  }
  ~Ram() { ::munmap(data, size); }
  uint8_t* data;
  uint64_t size;
};

std::string LastError() { return ssihv_last_error(); }

TEST_CASE("C API from C: callback source, discard, statistics") {
  char err[512];
  INFO(err);
  CHECK(ssihv_capi_smoke(err, sizeof(err)) == 0);
}

TEST_CASE("C API errors are codes with messages naming the call") {
  CHECK(std::string(ssihv_status_name(SSIHV_INVALID_ARGUMENT)) ==
        "INVALID_ARGUMENT");
  CHECK(std::string(ssihv_status_name(99)) == "UNKNOWN");
  CHECK(std::string(ssihv_status_name(-1)) == "UNKNOWN");
  ssihv_pager_options bad = {};
  bad.fault_threads = 300;
  ssihv_pager* p = nullptr;
  CHECK(ssihv_pager_create(&bad, &p) == SSIHV_INVALID_ARGUMENT);
  CHECK(p == nullptr);
  CHECK(LastError().find("ssihv_pager_options.fault_threads") == 0);
  CHECK(ssihv_pager_create(nullptr, nullptr) == SSIHV_INVALID_ARGUMENT);
  CHECK(LastError() == "ssihv_pager_create: out is NULL");
  // The last error is per thread.
  std::string other = "unset";
  std::thread([&] { other = ssihv_last_error(); }).join();
  CHECK(other.empty());

  REQUIRE(ssihv_pager_create(nullptr, &p) == SSIHV_OK);
  Ram ram(16 * kPage);
  CHECK(ssihv_pager_add_range(p, ram.data + 1, kPage, 0, 0) ==
        SSIHV_INVALID_ARGUMENT);
  CHECK(LastError().find("4 KiB aligned") != std::string::npos);
  CHECK(ssihv_pager_add_range(p, ram.data, kPage, 0, 0x80) ==
        SSIHV_INVALID_ARGUMENT);
  CHECK(LastError() == "ssihv_pager_add_range: unknown flags 0x80");
  CHECK(ssihv_pager_start(p) == SSIHV_FAILED_PRECONDITION);
  CHECK(LastError().find("no source") != std::string::npos);
  CHECK(ssihv_pager_set_source_zero(p, 5000) == SSIHV_INVALID_ARGUMENT);
  CHECK(LastError().find("fault_around=5000") != std::string::npos);
  CHECK(ssihv_pager_set_source_file(p, "/nonexistent/ram.img", nullptr, 0) ==
        SSIHV_NOT_FOUND);
  CHECK(LastError().find("/nonexistent/ram.img") != std::string::npos);
  CHECK(ssihv_pager_set_source_callback(p, nullptr, nullptr, nullptr) ==
        SSIHV_INVALID_ARGUMENT);
  void* host = nullptr;
  uint64_t size = 0;
  CHECK(ssihv_pager_memory(p, &host, &size) == SSIHV_FAILED_PRECONDITION);
  ssihv_pager_stats stats;
  CHECK(ssihv_pager_get_stats(p, &stats) == SSIHV_OK);
  CHECK(stats.features != 0);
  ssihv_pager_destroy(p);
  ssihv_pager_destroy(nullptr);  // ignored
}

TEST_CASE("C API file source with extents; zero source with fault-around") {
  const std::string path =
      "/dev/shm/ssihv-capi-test-" + std::to_string(::getpid());
  std::string bytes(8 * kPage, '\0');
  for (uint64_t x = 0; x < bytes.size(); x += 8) {
    const uint64_t v = x + 1;
    std::memcpy(&bytes[x], &v, 8);
  }
  REQUIRE(ssihv::base::WriteFileAtomically(path, bytes).ok());
  Ram ram(16 * kPage);
  ssihv_pager* p = nullptr;
  REQUIRE(ssihv_pager_create(nullptr, &p) == SSIHV_OK);
  REQUIRE(ssihv_pager_add_range(p, ram.data, ram.size, 0, 0) == SSIHV_OK);
  // File pages 4..7 at gpa 0, file pages 0..1 at gpa 8 pages.
  const ssihv_file_extent extents[] = {{0, 4 * kPage, 4 * kPage},
                                       {8 * kPage, 0, 2 * kPage}};
  REQUIRE(ssihv_pager_set_source_file(p, path.c_str(), extents, 2) == SSIHV_OK);
  ::unlink(path.c_str());
  REQUIRE(ssihv_pager_start(p) == SSIHV_OK);
  auto word = [&](uint64_t gpa) {
    uint64_t v;
    std::memcpy(&v, ram.data + gpa, 8);
    return v;
  };
  CHECK(word(0) == 4 * kPage + 1);
  CHECK(word(3 * kPage + 8) == 7 * kPage + 9);
  CHECK(word(8 * kPage) == 1);
  CHECK(word(9 * kPage + 16) == kPage + 17);
  CHECK(word(5 * kPage) == 0);  // outside every extent
  ssihv_pager_destroy(p);

  Ram ram2(64 * kPage);
  REQUIRE(ssihv_pager_create(nullptr, &p) == SSIHV_OK);
  REQUIRE(ssihv_pager_add_range(p, ram2.data, ram2.size, 0, 0) == SSIHV_OK);
  REQUIRE(ssihv_pager_set_source_zero(p, 16 * kPage) == SSIHV_OK);
  REQUIRE(ssihv_pager_start(p) == SSIHV_OK);
  ram2.data[kPage] = 7;  // one fault fills its 16-page block
  CHECK(ram2.data[kPage] == 7);
  ssihv_pager_stats stats{};
  REQUIRE(ssihv::pager::testing::WaitFor([&] {
    ssihv_pager_get_stats(p, &stats);
    return stats.filled_ahead == 15;
  }));
  CHECK(stats.faults[SSIHV_FAULT_LOCAL_ZERO] == 1);
  ssihv_pager_destroy(p);
}

// A userfaultfd made the way Firecracker makes it: MISSING only, no WP.
int ForeignUffd(uint8_t* host, uint64_t size) {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    const int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    REQUIRE(dev >= 0);
    fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    ::close(dev);
  }
  REQUIRE(fd >= 0);
  uffdio_api api{UFFD_API, UFFD_FEATURE_EVENT_REMOVE, 0};
  REQUIRE(::ioctl(fd, UFFDIO_API, &api) == 0);
  uffdio_register reg{};
  reg.range = {reinterpret_cast<uint64_t>(host), size};
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  REQUIRE(::ioctl(fd, UFFDIO_REGISTER, &reg) == 0);
  return fd;
}

int FillWithGpa(void*, uint64_t gpa, void* page, int) {
  std::memcpy(page, &gpa, 8);
  return SSIHV_FILL_COPY;
}

TEST_CASE("C API over a userfaultfd created elsewhere") {
  Ram ram(32 * kPage);
  const int uffd = ForeignUffd(ram.data, ram.size);
  ssihv_pager* p = nullptr;
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  CHECK(ssihv_pager_create_for_uffd(null_fd, nullptr, &p) ==
        SSIHV_INVALID_ARGUMENT);
  CHECK(LastError().find("is not a userfaultfd") != std::string::npos);
  ::close(null_fd);
  REQUIRE(ssihv_pager_create_for_uffd(uffd, nullptr, &p) == SSIHV_OK);
  ::close(uffd);  // the pager keeps its own duplicate
  REQUIRE(ssihv_pager_add_range(p, ram.data, ram.size, 1 << 20, 0) == SSIHV_OK);
  REQUIRE(ssihv_pager_set_source_callback(p, FillWithGpa, nullptr, nullptr) ==
          SSIHV_OK);
  REQUIRE(ssihv_pager_start(p) == SSIHV_OK);
  for (uint64_t i = 0; i < 32; ++i) {
    uint64_t v;
    std::memcpy(&v, ram.data + i * kPage, 8);
    CHECK(v == (1 << 20) + i * kPage);
  }
  CHECK(ssihv_pager_discard(p, 1 << 20, kPage) == SSIHV_FAILED_PRECONDITION);
  CHECK(LastError().find("Pager::Adopt") != std::string::npos);
  ssihv_pager_stats stats{};
  ssihv_pager_stop(p);
  REQUIRE(ssihv_pager_get_stats(p, &stats) == SSIHV_OK);
  CHECK(stats.faults[SSIHV_FAULT_LOCAL_COPY] == 32);
  CHECK(stats.features == 0);  // unknown: negotiated by the creator
  ssihv_pager_destroy(p);
}

struct ErrorLog {
  std::mutex mu;
  std::condition_variable cv;
  ssihv_status status = SSIHV_OK;
  std::string message;
};

int FailOnePage(void*, uint64_t gpa, void* page, int) {
  if (gpa == 3 * kPage) return SSIHV_FILL_FAIL;
  std::memset(page, 1, kPage);
  return SSIHV_FILL_COPY;
}

TEST_CASE("C API: a fill failure reaches on_error; the vCPU stays blocked") {
  Ram ram(8 * kPage);
  ErrorLog log;
  ssihv_pager_options options = {};
  options.on_error = [](void* ctx, ssihv_status status, const char* message) {
    auto* l = static_cast<ErrorLog*>(ctx);
    std::lock_guard<std::mutex> lock(l->mu);
    l->status = status;
    l->message = message;
    l->cv.notify_all();
  };
  options.on_error_ctx = &log;
  ssihv_pager* p = nullptr;
  REQUIRE(ssihv_pager_create(&options, &p) == SSIHV_OK);
  REQUIRE(ssihv_pager_add_range(p, ram.data, ram.size, 0, 0) == SSIHV_OK);
  REQUIRE(ssihv_pager_set_source_callback(p, FailOnePage, nullptr, nullptr) ==
          SSIHV_OK);
  REQUIRE(ssihv_pager_start(p) == SSIHV_OK);
  CHECK(ram.data[0] == 1);
  std::atomic<bool> returned{false};
  std::thread vcpu([&] {
    (void)*reinterpret_cast<volatile uint8_t*>(ram.data + 3 * kPage);
    returned = true;
  });
  {
    std::unique_lock<std::mutex> lock(log.mu);
    REQUIRE(log.cv.wait_for(lock, std::chrono::seconds(20),
                            [&] { return log.status != SSIHV_OK; }));
  }
  CHECK(log.status == SSIHV_INTERNAL);
  CHECK(log.message.find("fill callback returned 2 for gpa=0x3000") !=
        std::string::npos);
  CHECK_FALSE(returned.load());
  // Destroying the pager closes the uffd: the access completes as plain
  // anonymous memory (zeros).
  ssihv_pager_destroy(p);
  vcpu.join();
  CHECK(returned.load());
}

}  // namespace
