// `ssihvctl calibrate` end to end: 2- and 3-node local clusters over TCP,
// each node a process with a DsmNode. The measured config validates, its
// local latencies are below the remote ones, and failures write nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/cluster/config.h"
#include "ssihv/testing/host.h"

namespace {

using ssihv::cluster::ClusterConfig;

using ssihv::testing::CommandResult;

CommandResult Run(const std::string& args) {
  return ssihv::testing::RunShell(std::string(SSIHVCTL) + " " + args);
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/ssihv_calibrate_test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { REQUIRE(std::system(("rm -rf " + path).c_str()) == 0); }
  std::string path;
};

// A cluster of `n` nodes on 127.0.0.1 over TCP; `extra` goes into the root.
std::string WriteConfig(const TempDir& d, int n,
                        const std::string& extra = "") {
  std::string nodes;
  for (int k = 0; k < n; ++k) {
    absl::StrAppend(&nodes, k ? "," : "", R"({"id": )", k,
                    R"(, "vcpus": 1, "memory_mib": 64, "address": "127.0.0.1:)",
                    ssihv::testing::FreeLoopbackPort(), "\"}");
  }
  const std::string path = d.path + "/cluster.json";
  REQUIRE(ssihv::base::WriteFileAtomically(
              path, absl::StrCat(R"({"transport": "tcp", "nodes": [)", nodes,
                                 "]", extra, "}"))
              .ok());
  return path;
}

// A cluster secret file (owner-only, as the transport demands).
std::string WriteSecret(const TempDir& d) {
  const std::string secret = d.path + "/secret";
  REQUIRE(ssihv::base::WriteFileAtomically(secret,
                                           "calibrate-test-secret-0123456789")
              .ok());
  REQUIRE(::chmod(secret.c_str(), 0600) == 0);
  return secret;
}

// Small windows and buffer: a few seconds per cluster on a shared host.
constexpr char kQuick[] = "--pages 256 --local-mib 16 --threads 2";

void CheckMeasured(const std::string& path, int n) {
  auto measured = ssihv::cluster::LoadClusterConfig(path);
  REQUIRE(measured.ok());  // the file passes validation
  REQUIRE(measured->num_nodes() == static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const uint64_t local = measured->memory_latency_ns[i][i];
    for (int j = 0; j < n; ++j) {
      CAPTURE(i, j);
      if (i == j) {
        CHECK(measured->distances[i][j] == 10);
        continue;
      }
      const uint64_t remote = measured->memory_latency_ns[i][j];
      CHECK(local < remote);
      CHECK(measured->memory_bandwidth_mbps[i][i] >
            measured->memory_bandwidth_mbps[i][j]);
      const double d =
          10.0 * static_cast<double>(remote) / static_cast<double>(local);
      const double expected = std::clamp(d, 11.0, 255.0);
      CHECK(std::abs(measured->distances[i][j] - expected) <= 1.0);
    }
  }
  CHECK(measured->transport == ssihv::cluster::TransportKind::kTcp);
}

TEST_CASE("calibrate a 2-node local cluster") {
  TempDir d;
  const std::string config = WriteConfig(d, 2);
  const std::string out = d.path + "/measured.json";
  CommandResult r = Run(
      absl::StrCat("--config ", config, " calibrate --out ", out, " ", kQuick));
  INFO(r.output);
  REQUIRE(r.exit == 0);
  CHECK(r.output.find("memory_latency_ns (row: initiator node") !=
        std::string::npos);
  CHECK(r.output.find("wrote " + out) != std::string::npos);
  CheckMeasured(out, 2);
}

TEST_CASE("calibrate a 3-node local cluster with a secret file") {
  TempDir d;
  const std::string secret = WriteSecret(d);
  const std::string config =
      WriteConfig(d, 3, absl::StrCat(R"(, "secret_file": ")", secret, "\""));
  const std::string out = d.path + "/measured.json";
  CommandResult r = Run(
      absl::StrCat("--config ", config, " calibrate --out ", out, " ", kQuick));
  INFO(r.output);
  REQUIRE(r.exit == 0);
  CheckMeasured(out, 3);
  auto measured = ssihv::cluster::LoadClusterConfig(out);
  CHECK(measured->secret_file == secret);  // the rest of the config is kept
}

// `ssihvctl calibrate --node K` as each host of a cluster runs it.
pid_t Spawn(const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::vector<char*> argv = {const_cast<char*>(SSIHVCTL)};
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(SSIHVCTL, argv.data());
    _exit(127);
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_CASE("calibrate one process per node (--node K), as on several hosts") {
  TempDir d;
  const std::string secret = WriteSecret(d);
  const std::string config =
      WriteConfig(d, 3, absl::StrCat(R"(, "secret_file": ")", secret, "\""));
  const std::string out = d.path + "/measured.json";
  const std::vector<std::string> quick = {"--pages", "256",       "--local-mib",
                                          "16",      "--threads", "2"};
  std::vector<pid_t> others;
  for (const char* k : {"2", "1"}) {
    std::vector<std::string> args = {"--config", config, "calibrate", "--node",
                                     k};
    args.insert(args.end(), quick.begin(), quick.end());
    others.push_back(Spawn(args));
  }
  CommandResult r = Run(absl::StrCat(
      "--config ", config, " calibrate --node 0 --out ", out, " ", kQuick));
  INFO(r.output);
  CHECK(r.exit == 0);
  for (pid_t p : others) CHECK(Wait(p) == 0);
  CheckMeasured(out, 3);
}

TEST_CASE("calibrate --node K needs the config's secret_file") {
  TempDir d;
  const std::string config = WriteConfig(d, 2);
  CommandResult r =
      Run(absl::StrCat("--config ", config, " calibrate --node 1"));
  CHECK(r.exit == 5);
  CHECK(r.output.find("node 1: secret_file: not set") != std::string::npos);
}

TEST_CASE("calibrate failures write nothing and leave the old file") {
  TempDir d;
  const std::string config = WriteConfig(d, 2);
  // The output directory does not exist: refused before measuring.
  CommandResult r = Run(absl::StrCat("--config ", config, " calibrate --out ",
                                     d.path, "/none/m.json ", kQuick));
  CHECK(r.exit == 5);
  CHECK(r.output.find("--out " + d.path + "/none/m.json: directory " + d.path +
                      "/none: No such file or directory") != std::string::npos);

  // A node cannot listen (its port is taken): the run fails, the previous
  // output stays as it was and no temporary file is left.
  const std::string out = d.path + "/measured.json";
  REQUIRE(ssihv::base::WriteFileAtomically(out, "previous\n").ok());
  auto c = ssihv::cluster::LoadClusterConfig(config);
  REQUIRE(c.ok());
  ssihv::base::UniqueFd blocker(
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(
      c->nodes[1].address.substr(c->nodes[1].address.rfind(':') + 1))));
  REQUIRE(::bind(blocker.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) ==
          0);
  REQUIRE(::listen(blocker.get(), 1) == 0);
  r = Run(absl::StrCat("--config ", config, " calibrate --out ", out, " ",
                       kQuick, " --calibrate-timeout 20"));
  INFO(r.output);
  CHECK(r.exit == 5);
  CHECK(r.output.find("node 1") != std::string::npos);
  CHECK(*ssihv::base::ReadFile(out) == "previous\n");
  CommandResult ls = Run("--help >/dev/null; ls " + d.path);
  CHECK(ls.output == "cluster.json\nmeasured.json\n");

  // Bad arguments.
  r = Run(
      absl::StrCat("--config ", config, " calibrate --out ", out, " --node 7"));
  CHECK(r.exit == 2);
  CHECK(r.output.find("--node 7: the config has 2 nodes") != std::string::npos);
}

}  // namespace
