// CreateTransport: the config's `transport` and `secret_file` keys.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/testing/log_capture.h"

namespace ssihv::rdmax {
namespace {

std::string SecretFile(mode_t mode) {
  char path[] = "/tmp/rdmax_factory_secret_XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  const char kSecret[] = "factory-test-cluster-secret\n";
  REQUIRE(::write(fd, kSecret, sizeof(kSecret) - 1) ==
          static_cast<ssize_t>(sizeof(kSecret) - 1));
  ::close(fd);
  REQUIRE(::chmod(path, mode) == 0);
  return path;
}

cluster::ClusterConfig Config(const std::string& transport,
                              const std::string& secret_file) {
  std::string json = absl::StrCat(
      "{\"transport\": \"", transport, "\", ",
      secret_file.empty()
          ? ""
          : absl::StrCat("\"secret_file\": \"", secret_file, "\", "),
      "\"nodes\": [{\"id\": 0, \"vcpus\": 1, \"memory_mib\": 2, \"address\": "
      "\"127.0.0.1:7790\"}, {\"id\": 1, \"vcpus\": 1, \"memory_mib\": 2, "
      "\"address\": \"127.0.0.1:7791\"}]}");
  auto c = cluster::ParseClusterConfig(json);
  REQUIRE(c.ok());
  return *c;
}

TEST_CASE("CreateTransport builds the backend the config names") {
  std::string secret = SecretFile(0600);
  auto t = CreateTransport(Config("tcp", secret), 1);
  REQUIRE(t.ok());
  CHECK((*t)->kind() == BackendKind::kTcp);
  CHECK((*t)->self() == 1);
  CHECK((*t)->Describe().find("127.0.0.1:7791") != std::string::npos);
  std::remove(secret.c_str());
}

TEST_CASE("CreateTransport auto falls back to TCP and says so") {
  std::string secret = SecretFile(0600);
  absl::StatusOr<std::unique_ptr<Transport>> t;
  {
    ssihv::testing::LogCapture logs;
    t = CreateTransport(Config("auto", secret), 0);
    CHECK(logs.Contains("transport auto: chose"));
  }
  REQUIRE(t.ok());
  if (ProbeRdmaDevice("", 1).ok()) {
    CHECK((*t)->kind() == BackendKind::kRdma);
  } else {
    CHECK((*t)->kind() == BackendKind::kTcp);
    // Without a device, asking for RDMA explicitly is an error with a reason.
    auto r = CreateTransport(Config("rdma", secret), 0);
    CHECK(!r.ok());
  }
  std::remove(secret.c_str());
}

TEST_CASE("CreateTransport refuses a bad secret file or node id") {
  std::string open = SecretFile(0644);
  CHECK(absl::IsPermissionDenied(
      CreateTransport(Config("tcp", open), 0).status()));
  CHECK(
      absl::IsInvalidArgument(CreateTransport(Config("tcp", ""), 0).status()));
  CHECK(absl::IsNotFound(
      CreateTransport(Config("tcp", "/nonexistent/secret"), 0).status()));
  std::string good = SecretFile(0600);
  CHECK(absl::IsInvalidArgument(
      CreateTransport(Config("tcp", good), 2).status()));
  TransportOptions o;
  o.secret = "short";
  CHECK(absl::IsInvalidArgument(
      CreateTransport(Config("tcp", good), 0, o).status()));
  std::remove(open.c_str());
  std::remove(good.c_str());
}

TEST_CASE("a service_nice outside -20..19 is refused, naming it") {
  std::string good = SecretFile(0600);
  for (int bad : {20, -21}) {
    TransportOptions o;
    o.service_nice = bad;
    absl::Status st = CreateTransport(Config("tcp", good), 0, o).status();
    CHECK(absl::IsInvalidArgument(st));
    CHECK_THAT(std::string(st.message()),
               Catch::Contains("service_nice: " + std::to_string(bad)));
  }
  std::remove(good.c_str());
}

}  // namespace
}  // namespace ssihv::rdmax
