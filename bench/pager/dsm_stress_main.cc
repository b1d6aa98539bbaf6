// dsm_stress: the long multi-process stress of the DSM node (issue 6).
//   dsm_stress [--nodes N] [--threads T] [--seconds S] [--iterations M]
//              [--fault-threads F] [--counters-per-node C] [--timeout S]
//              [--transport tcp|rdma] [--seed N] [--verbose]
//              [--history [--registers-per-node R] [--write-percent P]
//               [--log-ops N] [--sigstop MS] [--hogs N] [--netem SPEC]
//               [--kill]]
// Starts N node processes on 127.0.0.1, T threads each running
// lock-protected increments plus writer/reader sequence checks for S seconds
// (or M increments); exits 0 when no increment was lost and every sequence
// was monotonic, 1 otherwise. With --history the threads read and write
// registers instead, every operation is logged with CLOCK_MONOTONIC times
// and the whole history is checked for linearizability (tests/dsm/history.h)
// while the adversities run: --sigstop MS (random SIGSTOP/SIGCONT of nodes,
// up to MS each), --hogs N (CPU hog processes), --netem SPEC (the nodes in a
// private network namespace whose loopback has `netem SPEC`, e.g.
// "delay 200us 100us"), --kill (SIGKILL one node mid-run; the survivors
// declare it dead and report its lost pages). Exit 0: linearizable, no
// unexpected error; 1: a violation; 2: bad arguments; 3: the run failed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "stress.h"

namespace {

void Usage() {
  std::fprintf(
      stderr,
      "usage: dsm_stress [--nodes N] [--threads T] [--seconds S]\n"
      "                  [--iterations M] [--fault-threads F]\n"
      "                  [--counters-per-node C] [--timeout S]\n"
      "                  [--background-downgrade-us U]\n"
      "                  [--transport tcp|rdma] [--seed N] [--verbose]\n"
      "                  [--history [--registers-per-node R]\n"
      "                   [--write-percent P] [--log-ops N]\n"
      "                   [--sigstop MS] [--hogs N] [--netem SPEC]\n"
      "                   [--kill]]\n");
}

bool ParseInt(const char* s, int* out, long min = 1) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < min || v > 100000000) return false;
  *out = static_cast<int>(v);
  return true;
}

void PrintHistory(const ssihv::dsm_stress::StressResult& r) {
  std::printf(
      "history: %llu registers, %llu ops checked (%llu writes, %llu reads of "
      "%llu seen, %llu pending writes), %llu SIGSTOPs",
      static_cast<unsigned long long>(r.registers),
      static_cast<unsigned long long>(r.ops),
      static_cast<unsigned long long>(r.writes),
      static_cast<unsigned long long>(r.reads),
      static_cast<unsigned long long>(r.reads_seen),
      static_cast<unsigned long long>(r.pending_writes),
      static_cast<unsigned long long>(r.stops));
  if (r.killed >= 0) {
    std::printf(
        ", node %d killed: %llu lost page report(s), %llu stuck "
        "thread(s)",
        r.killed, static_cast<unsigned long long>(r.lost_pages),
        static_cast<unsigned long long>(r.stuck_threads));
  }
  if (r.full_logs > 0) {
    std::printf(", %llu thread(s) stopped early: log full",
                static_cast<unsigned long long>(r.full_logs));
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  ssihv::dsm_stress::StressOptions o;
  o.seconds = 60;
  o.timeout_s = 3600;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    int* target = nullptr;
    if (a == "--verbose") {
      o.verbose = true;
      continue;
    } else if (a == "--help") {
      Usage();
      return 0;
    } else if (a == "--seconds") {
      if (i + 1 >= argc || std::atof(argv[i + 1]) <= 0) {
        std::fprintf(stderr, "dsm_stress: bad --seconds\n");
        return 2;
      }
      o.seconds = std::atof(argv[++i]);
      o.timeout_s = static_cast<int>(o.seconds) * 4 + 120;
      continue;
    } else if (a == "--history") {
      o.history = true;
      continue;
    } else if (a == "--kill") {
      o.kill_node = true;
      continue;
    } else if (a == "--netem") {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        std::fprintf(stderr, "dsm_stress: --netem needs a netem spec\n");
        return 2;
      }
      o.netem = argv[++i];
      continue;
    } else if (a == "--log-ops" || a == "--seed") {
      char* end = nullptr;
      const unsigned long long v =
          i + 1 < argc ? std::strtoull(argv[i + 1], &end, 10) : 0;
      if (i + 1 >= argc || end == argv[i + 1] || *end != '\0' || v == 0) {
        std::fprintf(stderr, "dsm_stress: bad %s\n", a.c_str());
        return 2;
      }
      (a == "--seed" ? o.seed : o.log_ops) = v;
      ++i;
      continue;
    } else if (a == "--sigstop" || a == "--hogs" || a == "--write-percent") {
      int* t = a == "--sigstop" ? &o.sigstop_max_ms
               : a == "--hogs"  ? &o.hogs
                                : &o.write_percent;
      if (i + 1 >= argc || !ParseInt(argv[++i], t, 0)) {
        std::fprintf(stderr, "dsm_stress: bad %s\n", a.c_str());
        return 2;
      }
      continue;
    } else if (a == "--registers-per-node") {
      target = &o.registers_per_node;
    } else if (a == "--transport") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dsm_stress: --transport needs tcp or rdma\n");
        return 2;
      }
      o.transport = argv[++i];
      continue;
    } else if (a == "--nodes") {
      target = &o.nodes;
    } else if (a == "--threads") {
      target = &o.threads;
    } else if (a == "--iterations") {
      target = &o.iterations;
    } else if (a == "--fault-threads") {
      target = &o.fault_threads;
    } else if (a == "--counters-per-node") {
      target = &o.counters_per_node;
    } else if (a == "--timeout") {
      target = &o.timeout_s;
    } else if (a == "--background-downgrade-us") {
      target = &o.background_downgrade_us;
    }
    if (target == nullptr || i + 1 >= argc || !ParseInt(argv[++i], target)) {
      std::fprintf(stderr, "dsm_stress: bad argument '%s'\n", a.c_str());
      Usage();
      return 2;
    }
  }
  if (!o.history &&
      (o.sigstop_max_ms > 0 || o.hogs > 0 || !o.netem.empty() || o.kill_node)) {
    std::fprintf(stderr,
                 "dsm_stress: --sigstop, --hogs, --netem and --kill need "
                 "--history\n");
    return 2;
  }
  auto r = ssihv::dsm_stress::RunStress(o);
  if (!r.ok()) {
    std::fprintf(stderr, "dsm_stress: %s\n", r.status().ToString().c_str());
    return absl::IsInvalidArgument(r.status()) ? 2 : 3;
  }
  std::printf("%d nodes x %d threads: %.2f s, %llu increments in all\n",
              o.nodes, o.threads, r->wall_seconds,
              static_cast<unsigned long long>(r->expected_sum));
  if (o.history) PrintHistory(*r);
  for (size_t i = 0; i < r->nodes.size(); ++i) {
    const auto& n = r->nodes[i];
    if (o.history && n.stats_json.empty()) continue;  // killed
    auto stats = nlohmann::json::parse(n.stats_json, nullptr, false);
    if (!o.history)
      std::printf(
          "node %zu: sum %llu, reads %llu, bad reads %llu, bad slots %llu", i,
          static_cast<unsigned long long>(n.counter_sum),
          static_cast<unsigned long long>(n.reads),
          static_cast<unsigned long long>(n.bad_reads),
          static_cast<unsigned long long>(n.bad_slots));
    if (o.history) std::printf("node %zu", i);
    if (!stats.is_discarded()) {
      const auto& f = stats["pager"]["faults"];
      std::printf(
          ", faults: zero %llu remote_read %llu remote_write %llu upgrade "
          "%llu, "
          "remote p50 %.1f us p99 %.1f us",
          f["local_zero"].get<unsigned long long>(),
          f["remote_read"].get<unsigned long long>(),
          f["remote_write"].get<unsigned long long>(),
          f["upgrade"].get<unsigned long long>(),
          stats["pager"]["latency_us"]["remote_read"]["p50"].get<double>(),
          stats["pager"]["latency_us"]["remote_read"]["p99"].get<double>());
    }
    std::printf("\n");
    if (o.verbose) std::printf("%s\n", n.stats_json.c_str());
  }
  for (const auto& v : r->violations) std::printf("VIOLATION: %s\n", v.c_str());
  return r->violations.empty() ? 0 : 1;
}
