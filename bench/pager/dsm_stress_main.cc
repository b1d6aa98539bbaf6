// dsm_stress: the long multi-process stress of the DSM node (issue 6).
//   dsm_stress [--nodes N] [--threads T] [--seconds S] [--iterations M]
//              [--fault-threads F] [--counters-per-node C] [--timeout S]
//              [--transport tcp|rdma] [--verbose]
// Starts N node processes on 127.0.0.1 (TCP), T threads each running
// lock-protected increments plus writer/reader sequence checks for S seconds
// (or M increments); exits 0 when no increment was lost and every sequence
// was monotonic, 1 otherwise.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "stress.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: dsm_stress [--nodes N] [--threads T] [--seconds S]\n"
               "                  [--iterations M] [--fault-threads F]\n"
               "                  [--counters-per-node C] [--timeout S]\n"
               "                  [--transport tcp|rdma] [--verbose]\n");
}

bool ParseInt(const char* s, int* out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 1 || v > 100000000) return false;
  *out = static_cast<int>(v);
  return true;
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
    }
    if (target == nullptr || i + 1 >= argc || !ParseInt(argv[++i], target)) {
      std::fprintf(stderr, "dsm_stress: bad argument '%s'\n", a.c_str());
      Usage();
      return 2;
    }
  }
  auto r = ssihv::dsm_stress::RunStress(o);
  if (!r.ok()) {
    std::fprintf(stderr, "dsm_stress: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::printf("%d nodes x %d threads: %.2f s, %llu increments in all\n",
              o.nodes, o.threads, r->wall_seconds,
              static_cast<unsigned long long>(r->expected_sum));
  for (size_t i = 0; i < r->nodes.size(); ++i) {
    const auto& n = r->nodes[i];
    auto stats = nlohmann::json::parse(n.stats_json, nullptr, false);
    std::printf(
        "node %zu: sum %llu, reads %llu, bad reads %llu, bad slots %llu", i,
        static_cast<unsigned long long>(n.counter_sum),
        static_cast<unsigned long long>(n.reads),
        static_cast<unsigned long long>(n.bad_reads),
        static_cast<unsigned long long>(n.bad_slots));
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
