// ssihv-launch against a fake ssihv-vmm (a shell script that records its
// arguments and behaves as each case asks): one process per node with
// --node K, node 0's terminal, the others' output prefixed, signals to all,
// node 0's exit status, a node failing at setup stopping the others, the
// grace period, the one-time secret, and bad arguments.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "launcher.h"
#include "ssihv/cluster/config.h"
#include "ssihv/testing/subprocess.h"

namespace {

using ssihv::testing::Subprocess;
using std::chrono::seconds;

struct TempDir {
  TempDir() {
    char t[] = "/tmp/ssihv-launch-test.XXXXXX";
    REQUIRE(::mkdtemp(t) != nullptr);
    path = t;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string Write(const std::string& name, const std::string& text,
                    mode_t mode = 0644) {
    std::string p = path + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  std::string Read(const std::string& name) const {
    std::ifstream in(path + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string path;
};

// The fake VMM: records "$@" in node-K.args, prints on stdout and stderr,
// then does what FAKE_<K> says: "exit N", "exit N after J" (once node J is
// ready: its signal trap is set), "wait" (until SIGTERM/SIGINT, then exit
// 130) or "stubborn" (ignores SIGTERM, waits to be killed).
constexpr char kFakeVmm[] = R"(#!/bin/bash
node=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[i]}" = --node ] && node=${args[i+1]}
done
printf '%s\n' "$@" > "$FAKE_DIR/node-$node.args"
config=
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[i]}" = --config ] && config=${args[i+1]}
done
[ -n "$config" ] && cp "$config" "$FAKE_DIR/node-$node.config"
echo "out of node $node"
echo "err of node $node" >&2
printf 'no newline at the end'
echo >&2
var=FAKE_$node
what=${!var:-exit 0}
case "$what" in
  exit*after*) set -- $what
        while [ ! -e "$FAKE_DIR/node-$4.ready" ]; do sleep 0.02; done
        exit "$2" ;;
  exit*) exit ${what#exit } ;;
  wait) trap 'echo "node $node got TERM" >&2; exit 130' TERM INT
        touch "$FAKE_DIR/node-$node.ready"
        while :; do sleep 0.05; done ;;
  stubborn) trap '' TERM INT; touch "$FAKE_DIR/node-$node.ready"
        while :; do sleep 0.05; done ;;
esac
)";

constexpr char kConfig3[] = R"({"nodes": [
  {"id": 0, "vcpus": 1, "memory_mib": 64, "address": "127.0.0.1:7810"},
  {"id": 1, "vcpus": 1, "memory_mib": 64, "address": "127.0.0.1:7811"},
  {"id": 2, "vcpus": 0, "memory_mib": 64, "address": "127.0.0.1:7812"}],
  "secret_file": "/nonexistent/secret"})";

struct Fixture {
  TempDir dir;
  std::string vmm = dir.Write("fake-vmm", kFakeVmm, 0755);
  std::string config = dir.Write("cluster.json", kConfig3);

  std::unique_ptr<Subprocess> Launch(std::vector<std::string> env,
                                     std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {SSIHV_LAUNCH, "--config", config, "--vmm",
                                     vmm,          "--kernel", "k"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    env.push_back("FAKE_DIR=" + dir.path);
    auto p = Subprocess::Start(argv, env, "console input\n");
    REQUIRE(p.ok());
    return std::move(*p);
  }
  bool Ready(int node) const {
    return ::access(
               (dir.path + "/node-" + std::to_string(node) + ".ready").c_str(),
               F_OK) == 0;
  }
  void WaitReady(std::initializer_list<int> nodes) {
    for (int n : nodes) {
      for (int i = 0; i < 2000 && !Ready(n); ++i) ::usleep(5000);
      REQUIRE(Ready(n));
    }
  }
};

TEST_CASE("one process per node, node 0's status, the others prefixed") {
  Fixture f;
  auto p = f.Launch({"FAKE_0=exit 7", "FAKE_1=exit 0", "FAKE_2=exit 0"});
  REQUIRE(p->Wait(seconds(30)) == 7);
  for (int k = 0; k < 3; ++k) {
    INFO("node " << k);
    CHECK(f.dir.Read("node-" + std::to_string(k) + ".args") ==
          "--config\n" + f.config + "\n--kernel\nk\n--node\n" +
              std::to_string(k) + "\n");
  }
  // Node 0 owns the terminal: its output is the launcher's, unprefixed.
  CHECK(p->out() == "out of node 0\nno newline at the end");
  // A whole, unprefixed line, anywhere: node 0 writes its stderr itself and
  // may come before the launcher's own first line.
  CHECK_THAT("\n" + p->err(), Catch::Contains("\nerr of node 0\n"));
  CHECK_THAT(p->err(), Catch::Contains("node 1: out of node 1\n"));
  CHECK_THAT(p->err(), Catch::Contains("node 2: err of node 2\n"));
  CHECK_THAT(p->err(), Catch::Contains("node 2: no newline at the end\n"));
  CHECK_THAT(p->err(), Catch::Contains("started 3 nodes"));
}

TEST_CASE("SIGTERM and SIGINT reach every node") {
  Fixture f;
  int sig = GENERATE(SIGTERM, SIGINT);
  auto p = f.Launch({"FAKE_0=wait", "FAKE_1=wait", "FAKE_2=wait"});
  f.WaitReady({0, 1, 2});
  p->Signal(sig);
  REQUIRE(p->Wait(seconds(30)) == 130);
  CHECK_THAT(p->err(), Catch::Contains("node 0 got TERM"));
  CHECK_THAT(p->err(), Catch::Contains("node 1: node 1 got TERM"));
  CHECK_THAT(p->err(), Catch::Contains("node 2: node 2 got TERM"));
}

TEST_CASE("a node that fails to start stops the others; its status wins") {
  Fixture f;
  // Node 1 fails once node 0 can tell that it was stopped (its trap set).
  auto p = f.Launch({"FAKE_0=wait", "FAKE_1=exit 3 after 0", "FAKE_2=wait"});
  REQUIRE(p->Wait(seconds(30)) == 3);
  CHECK_THAT(p->err(), Catch::Contains("node 1 exited with status 3"));
  CHECK_THAT(p->err(), Catch::Contains("node 0 got TERM"));
}

TEST_CASE("nodes still running after node 0 ended are killed after --grace") {
  Fixture f;
  auto p = f.Launch({"FAKE_0=wait", "FAKE_1=stubborn", "FAKE_2=exit 0"},
                    {"--grace", "1"});
  f.WaitReady({0, 1});
  p->Signal(SIGTERM);
  REQUIRE(p->Wait(seconds(30)) == 130);
  CHECK_THAT(p->err(), Catch::Contains("killing them"));
  CHECK_THAT(p->err(), Catch::Contains("node 1 exited with status 137"));
}

TEST_CASE("a config without secret_file gets a private one-time secret") {
  Fixture f;
  f.config = f.dir.Write("nosecret.json", R"({"nodes": [
    {"id": 0, "vcpus": 1, "memory_mib": 64, "address": "127.0.0.1:7810"},
    {"id": 1, "vcpus": 1, "memory_mib": 64, "address": "127.0.0.1:7811"}]})");
  auto p = f.Launch({});
  REQUIRE(p->Wait(seconds(30)) == 0);
  const std::string c0 = f.dir.Read("node-0.config");
  CHECK(c0 == f.dir.Read("node-1.config"));  // the same config for all
  CHECK_THAT(c0, Catch::Contains("\"secret_file\""));
  CHECK_THAT(p->err(), Catch::Contains("one-time random secret"));
  // Node 0's arguments name the generated config, which is gone at exit.
  std::string args = f.dir.Read("node-0.args");
  std::string generated = args.substr(9, args.find('\n', 9) - 9);
  CHECK(generated != f.config);
  CHECK(::access(generated.c_str(), F_OK) != 0);
}

TEST_CASE("the secret file is 0600 in a 0700 folder") {
  TempDir scratch;
  ::chmod(scratch.path.c_str(), 0700);
  std::string note;
  auto out = ssihv::launch::PrepareConfig("", scratch.path, &note);
  REQUIRE(out.ok());
  struct stat st;
  REQUIRE(::stat((scratch.path + "/secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(scratch.Read("secret").size() == 65);  // 64 hex digits + newline
  CHECK_THAT(scratch.Read("cluster.json"), Catch::Contains("127.0.0.1:7701"));
}

TEST_CASE("bad arguments: a clear message, nothing started") {
  Fixture f;
  SECTION("--node is the launcher's business") {
    auto p = f.Launch({}, {"--node", "1"});
    CHECK(p->Wait(seconds(30)) == 2);
    CHECK_THAT(p->err(), Catch::Contains("--node"));
  }
  SECTION("a config that does not validate") {
    f.config = f.dir.Write("bad.json", R"({"nodes": []})");
    auto p = f.Launch({});
    CHECK(p->Wait(seconds(30)) == 3);
    CHECK_THAT(p->err(), Catch::Contains("--config " + f.config));
  }
  SECTION("--grace out of range") {
    auto p = f.Launch({}, {"--grace", "0"});
    CHECK(p->Wait(seconds(30)) == 2);
    CHECK_THAT(p->err(), Catch::Contains("--grace"));
  }
  CHECK(::access((f.dir.path + "/node-0.args").c_str(), F_OK) != 0);
}

}  // namespace

TEST_CASE("without --config: the embedded default, its nodes far apart") {
  auto launched = ssihv::cluster::ParseClusterConfig(
      ssihv::launch::DefaultLaunchConfigJson());
  REQUIRE(launched.ok());
  const ssihv::cluster::ClusterConfig& embedded =
      ssihv::cluster::DefaultClusterConfig();
  // The same machine: nodes, addresses, HMAT.
  REQUIRE(launched->num_nodes() == embedded.num_nodes());
  CHECK(launched->nodes[1].address == embedded.nodes[1].address);
  CHECK(launched->memory_latency_ns == embedded.memory_latency_ns);
  // ... but no remote node near enough for the guest to move tasks to it.
  CHECK(ssihv::cluster::FirstNearRemoteNode(embedded).has_value());
  CHECK_FALSE(ssihv::cluster::FirstNearRemoteNode(*launched).has_value());
  CHECK(launched->distances[0][0] == 10);
  CHECK(launched->distances[0][1] == 100);
}
