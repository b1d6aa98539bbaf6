// The multi-process proof of issue 6 in CTest: 2, 3 and 4 node processes on
// 127.0.0.1 (TCP transport), 2 threads each, a few seconds in all; built
// again with SSIHV_DSM_TEST_RDMA as the RDMA variant the lab VM runs. The
// long version is bench/pager/dsm_stress.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "stress.h"
#include "stress_util.h"

namespace ssihv::dsm_stress {
namespace {

/// Over TCP, homes answered faults on lanes (DsmOptions::answer_lanes) and
/// the fault threads that asked took those answers (docs/PAGER.md, "Answer
/// lanes"). Nodes that never reported (killed) are left out.
void CheckAnswerLanes(const StressResult& r) {
  uint64_t calls = 0, sent = 0, taken = 0;
  for (const NodeReport& n : r.nodes) {
    if (n.stats_json.empty()) continue;
    const nlohmann::json dsm = nlohmann::json::parse(n.stats_json)["dsm"];
    calls += dsm["lane_calls"].get<uint64_t>();
    sent += dsm["lane_answers_sent"].get<uint64_t>();
    taken += dsm["lane_answers_taken"].get<uint64_t>();
  }
  CHECK(calls > 0);
  CHECK(sent > 0);
  CHECK(taken > 0);
  CHECK(taken <= calls);
}

void RunAndCheck(int nodes, double seconds,
                 const std::string& transport = "tcp") {
  StressOptions o;
  o.nodes = nodes;
  o.transport = transport;
  o.threads = 2;
  o.seconds = seconds;
  o.timeout_s = 120;
  absl::StatusOr<StressResult> r = RunStress(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  for (const std::string& v : r->violations) UNSCOPED_INFO(v);
  CHECK(r->violations.empty());
  CHECK(r->expected_sum > 0);
  for (const NodeReport& n : r->nodes) {
    CHECK(n.counter_sum == r->expected_sum);
    CHECK(n.bad_reads == 0);
    CHECK(n.bad_slots == 0);
    CHECK(n.reads > 0);
    CHECK(n.increments > 0);
  }
  CheckAnswerLanes(*r);  // TCP and RDMA: both serve lane calls
}

/// The history mode: every read and write logged and the whole history
/// checked for linearizability, under the adversities `o` asks for.
StressResult RunHistory(StressOptions o) {
  o.history = true;
  o.threads = 2;
  o.timeout_s = 120;
  // Enough operations for the check to mean something on a loaded host
  // (a 2 s run under CI load once logged 46 writes): with a 30% write mix,
  // 200 per thread gives ~240 writes even when one node is killed.
  o.min_ops = 200;
  // A survivor whose peer's threads are stuck on lost pages runs on its
  // own copies at local speed, over 1 M operations a second: the default
  // 2 Mi-entry log filled in 2 of 14 SIGKILL runs (full_logs, checked
  // below). The logs are mapped without reserve and touched only as used.
  o.log_ops = uint64_t{1} << 24;
  absl::StatusOr<StressResult> r = RunStress(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  for (const std::string& v : r->violations) UNSCOPED_INFO(v);
  CHECK(r->violations.empty());
  CHECK(r->writes > 100);
  CHECK(r->reads > 100);
  CHECK(r->registers == static_cast<uint64_t>(o.nodes * o.registers_per_node));
  CHECK(r->full_logs == 0);
  return *r;
}

#ifdef SSIHV_DSM_TEST_RDMA
// The lab VM runs this one (label rdma) over rxe0.
TEST_CASE("2 node processes over RDMA: no lost increment") {
  RunAndCheck(2, 2.0, "rdma");
}

TEST_CASE("History over RDMA, 3 nodes, SIGSTOP/SIGCONT: linearizable") {
  StressOptions o;
  o.nodes = 3;
  o.seconds = 2.0;
  o.transport = "rdma";
  o.sigstop_max_ms = 50;
  StressResult r = RunHistory(o);
  CHECK(r.stops > 0);
}
#else
TEST_CASE("History, 3 nodes, SIGSTOP/SIGCONT and a CPU hog: linearizable") {
  StressOptions o;
  o.nodes = 3;
  o.seconds = 2.0;
  o.sigstop_max_ms = 50;
  o.hogs = 1;
  StressResult r = RunHistory(o);
  CHECK(r.stops > 0);
  CHECK(r.killed == -1);
}

TEST_CASE("History, 3 nodes, one SIGKILLed mid-run: survivors linearizable") {
  StressOptions o;
  o.nodes = 3;
  o.seconds = 2.0;
  o.kill_node = true;
  StressResult r = RunHistory(o);
  CHECK(r.killed >= 0);
  CheckAnswerLanes(r);
}

// The campaign's one unexplained failed run (docs/PAGER.md): node 1 ended
// "killed by signal 1 (Hangup)" while the adversity held it stopped, when
// the shell job that had started the campaign ended. A node's lifetime is
// its driver's; a hang-up meant for the job must not end it.
TEST_CASE("A node held stopped survives a hang-up and goes on") {
  absl::StatusOr<Child> c = SpawnNode([](int cmd, int report) {
    WriteLine(report, "ready");
    LineReader commands(cmd);
    absl::StatusOr<std::string> go =
        commands.Next(absl::Now() + absl::Seconds(30));
    WriteLine(report, go.ok() && *go == "go" ? "done" : "no go");
    return 0;
  });
  REQUIRE(c.ok());
  std::vector<Child> children;
  children.push_back(*std::move(c));
  Child& node = children[0];
  REQUIRE(node.reader->Next(absl::Now() + absl::Seconds(30)).value_or("") ==
          "ready");
  REQUIRE(::kill(node.pid, SIGSTOP) == 0);
  REQUIRE(::kill(node.pid, SIGHUP) == 0);
  REQUIRE(::kill(node.pid, SIGCONT) == 0);
  WriteLine(node.cmd, "go");
  absl::StatusOr<std::string> done =
      node.reader->Next(absl::Now() + absl::Seconds(30));
  INFO((done.ok() ? *done : DescribeEnd(node.pid, absl::Seconds(5))));
  CHECK(done.value_or("") == "done");
  CHECK(ReapNodes(children, /*kill=*/false).ok());
}

TEST_CASE("2 node processes: no lost increment, monotonic sequences") {
  RunAndCheck(2, 1.5);
}

TEST_CASE("3 node processes: no lost increment, monotonic sequences") {
  RunAndCheck(3, 1.5);
}

TEST_CASE("4 node processes: no lost increment, monotonic sequences") {
  RunAndCheck(4, 1.5);
}
#endif

}  // namespace
}  // namespace ssihv::dsm_stress
