// dsm-sim — model-checks libdirectory's page coherence protocol.
//
//   dsm-sim --nodes N[-M] --pages P --ops K --seeds A-B [--faults LIST]
//   dsm-sim --exhaustive --nodes N --pages P --ops K [--faults LIST]
//
// Exit status: 0 no violation, 1 a violation (or an incomplete exhaustive
// run), 2 bad usage.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ssihv/directory/sim.h"

namespace {

using ssihv::directory::kNumMsgTypes;
using ssihv::directory::MsgType;
using ssihv::directory::MsgTypeName;
namespace sim = ssihv::directory::sim;

constexpr char kUsage[] =
    "usage: dsm-sim --nodes N[-M] --pages P --ops K --seeds A-B\n"
    "               [--faults reorder,drop,crash] [--threads T] [--pull]\n"
    "               [--write-percent W] [--max-crashes C] [--trace-lines L]\n"
    "               [--runs R] [--downgrade] [--lanes] [--answer-lanes]\n"
    "       dsm-sim --exhaustive --nodes N --pages P --ops K\n"
    "               [--faults drop,crash] [--threads T] [--pull] "
    "[--downgrade]\n"
    "               [--max-states S] [--runs R] [--lanes] "
    "[--answer-lanes]\n"
    "Simulates N nodes running K reads/writes per thread on P pages through\n"
    "the libdirectory protocol and checks SWMR, data values, losses,\n"
    "liveness and directory agreement after every step. --nodes 2-5 picks\n"
    "the node count per seed (N + seed mod (M-N+1)). --exhaustive explores\n"
    "every interleaving and every choice of operations. --runs R: after a\n"
    "fault that waits, ask for up to R following pages with one run\n"
    "request: a read run after a read, as read-ahead does, a write run\n"
    "after a write, as first-touch runs do (default 3 for seeds, 0\n"
    "exhaustive). --downgrade: homes also downgrade idle Modified pages\n"
    "they hold alone, at any step (libpager's background downgrade).\n"
    "--lanes: requests travel on two lanes per pair, ordered neither with\n"
    "each other nor with the pair's channel, until the sender learns of a\n"
    "death.\n"
    "--answer-lanes: so do the homes' answers to requests, numbered per\n"
    "pair; a message on the pair's channel is taken only after the answers\n"
    "its sender put on lanes before it (docs/PROTOCOL.md, \"Answers on\n"
    "lanes\").\n"
    "Test only:\n"
    "--inject-bug skip-invalidation|skip-downgrade|run-skip-downgrade|\n"
    "write-run-not-pristine|downgrade-skip-protect|early-unblock (protocol\n"
    "bugs) or\n"
    "driver-early-send (a driver that sends before its local effects) or\n"
    "answers-unordered (--answer-lanes, but the pair's channel does not\n"
    "wait for the answers sent on lanes before it).\n";

struct Args {
  sim::Config config;
  uint32_t nodes_min = 2, nodes_max = 2;
  uint64_t seed_first = 1, seed_last = 1;
  bool exhaustive = false;
  uint64_t max_states = 20'000'000;
  std::string faults = "none";
  int64_t runs = -1;  // --runs; -1: the mode's default
};

bool ParseRange(absl::string_view s, uint64_t* lo, uint64_t* hi) {
  std::vector<absl::string_view> parts = absl::StrSplit(s, '-');
  if (parts.size() == 1) {
    if (!absl::SimpleAtoi(parts[0], lo)) return false;
    *hi = *lo;
    return true;
  }
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], lo) &&
         absl::SimpleAtoi(parts[1], hi) && *lo <= *hi;
}

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr, "dsm-sim: %s\n%s", error.c_str(), kUsage);
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--exhaustive") {
      a.exhaustive = true;
      continue;
    }
    if (flag == "--pull") {
      a.config.pull = true;
      continue;
    }
    if (flag == "--downgrade") {
      a.config.downgrade = true;
      continue;
    }
    if (flag == "--lanes") {
      a.config.request_lanes = true;
      continue;
    }
    if (flag == "--answer-lanes") {
      a.config.answer_lanes = true;
      continue;
    }
    if (i + 1 >= argc) Usage(flag + " needs a value");
    std::string v = argv[++i];
    uint64_t lo = 0, hi = 0;
    bool ok = true;
    if (flag == "--nodes") {
      ok = ParseRange(v, &lo, &hi) && lo >= 1 && hi <= 64;
      a.nodes_min = static_cast<uint32_t>(lo);
      a.nodes_max = static_cast<uint32_t>(hi);
    } else if (flag == "--seeds") {
      ok = ParseRange(v, &a.seed_first, &a.seed_last);
    } else if (flag == "--pages") {
      ok = absl::SimpleAtoi(v, &a.config.pages) && a.config.pages >= 1 &&
           a.config.pages <= 1'000'000;
    } else if (flag == "--ops") {
      ok = absl::SimpleAtoi(v, &a.config.ops) && a.config.ops <= 10'000'000;
    } else if (flag == "--threads") {
      ok = absl::SimpleAtoi(v, &a.config.threads) && a.config.threads >= 1 &&
           a.config.threads <= 64;
    } else if (flag == "--write-percent") {
      ok = absl::SimpleAtoi(v, &a.config.write_percent) &&
           a.config.write_percent <= 100;
    } else if (flag == "--max-crashes") {
      ok = absl::SimpleAtoi(v, &a.config.max_crashes);
    } else if (flag == "--trace-lines") {
      ok = absl::SimpleAtoi(v, &a.config.trace_lines) &&
           a.config.trace_lines <= 100000;
    } else if (flag == "--runs") {
      ok = absl::SimpleAtoi(v, &a.runs) && a.runs >= 0 && a.runs <= 64;
    } else if (flag == "--max-states") {
      ok = absl::SimpleAtoi(v, &a.max_states) && a.max_states > 0;
    } else if (flag == "--faults") {
      absl::Status s = sim::ParseFaults(v, &a.config);
      if (!s.ok()) Usage(std::string(s.message()));
      a.faults = v;
    } else if (flag == "--inject-bug") {
      absl::Status s = sim::ParseBug(v, &a.config);
      if (!s.ok()) Usage(std::string(s.message()));
    } else {
      Usage("unknown flag " + flag);
    }
    if (!ok) Usage("bad value '" + v + "' for " + flag);
  }
  // Seeded runs exercise run grants unless told otherwise; the exhaustive
  // configurations keep the state counts of docs/PROTOCOL.md by default.
  a.config.run_pages =
      static_cast<uint32_t>(a.runs >= 0 ? a.runs : (a.exhaustive ? 0 : 3));
  return a;
}

// The switches a run was made with, each " <prefix><name>": " pull lanes"
// in the summaries, " --pull --lanes" in the line that reproduces a run.
std::string Switches(const sim::Config& c, absl::string_view prefix) {
  std::string s;
  if (c.pull) absl::StrAppend(&s, " ", prefix, "pull");
  if (c.downgrade) absl::StrAppend(&s, " ", prefix, "downgrade");
  if (c.request_lanes) absl::StrAppend(&s, " ", prefix, "lanes");
  if (c.answer_lanes) absl::StrAppend(&s, " ", prefix, "answer-lanes");
  return s;
}

void PrintViolation(const char* what, const sim::Violation& v) {
  std::printf("VIOLATION %s invariant=%s: %s\ntrace (last steps):\n%s", what,
              v.invariant.c_str(), v.detail.c_str(), v.trace.c_str());
}

int RunExhaustive(Args& a) {
  if (a.nodes_min != a.nodes_max) Usage("--exhaustive takes one node count");
  a.config.nodes = a.nodes_min;
  auto start = std::chrono::steady_clock::now();
  sim::ExploreResult r = sim::Explore(a.config, a.max_states);
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::string what =
      absl::StrCat("nodes=", a.config.nodes, " pages=", a.config.pages,
                   " ops=", a.config.ops, " threads=", a.config.threads,
                   " faults=", a.faults, Switches(a.config, ""),
                   a.config.run_pages ? " runs=" : "",
                   a.config.run_pages ? absl::StrCat(a.config.run_pages) : "");
  if (!r.ok) {
    PrintViolation(what.c_str(), r.violation);
    return 1;
  }
  std::printf(
      "dsm-sim exhaustive %s: %llu states, %llu transitions, %llu final "
      "states, depth %u, %.1f s: %s\n",
      what.c_str(), static_cast<unsigned long long>(r.states),
      static_cast<unsigned long long>(r.transitions),
      static_cast<unsigned long long>(r.terminal), r.max_depth, secs,
      r.truncated ? "INCOMPLETE (state limit reached)" : "no violation");
  return r.truncated ? 1 : 0;
}

int RunSeeds(Args& a) {
  auto start = std::chrono::steady_clock::now();
  uint64_t seeds = 0, steps = 0, reads = 0, writes = 0, lost = 0, crashes = 0,
           calm = 0, worst = 0, bound = 0;
  sim::RunResult sum;
  uint32_t span = a.nodes_max - a.nodes_min + 1;
  for (uint64_t seed = a.seed_first; seed <= a.seed_last; ++seed) {
    a.config.nodes = a.nodes_min + static_cast<uint32_t>(seed % span);
    sim::RunResult r = sim::RunSeed(a.config, seed);
    if (!r.ok) {
      std::string what = absl::StrCat(
          "seed=", seed, " nodes=", a.config.nodes, " pages=", a.config.pages,
          " ops=", a.config.ops, " faults=", a.faults);
      PrintViolation(what.c_str(), r.violation);
      std::printf(
          "reproduce: dsm-sim --nodes %u --pages %llu --ops %u "
          "--threads %u --seeds %llu --faults %s --runs %u%s\n",
          a.config.nodes, static_cast<unsigned long long>(a.config.pages),
          a.config.ops, a.config.threads, static_cast<unsigned long long>(seed),
          a.faults.c_str(), a.config.run_pages,
          Switches(a.config, "--").c_str());
      return 1;
    }
    ++seeds;
    steps += r.steps;
    reads += r.reads;
    writes += r.writes;
    lost += r.lost_ops;
    crashes += r.crashes;
    calm += r.calm_steps;
    if (r.max_calm_wait > worst) {
      worst = r.max_calm_wait;
      bound = r.liveness_bound;
    }
    for (int t = 0; t < kNumMsgTypes; ++t)
      sum.totals.sent[t] += r.totals.sent[t];
    sum.totals.faults_read_miss += r.totals.faults_read_miss;
    sum.totals.faults_write_miss += r.totals.faults_write_miss;
    sum.totals.faults_upgrade += r.totals.faults_upgrade;
    sum.totals.pages_lost += r.totals.pages_lost;
    sum.totals.run_pages_granted += r.totals.run_pages_granted;
    sum.totals.write_run_pages_granted += r.totals.write_run_pages_granted;
    sum.totals.write_run_pages_refused += r.totals.write_run_pages_refused;
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const sim::RunResult& s = sum;
  uint64_t misses = s.totals.faults_read_miss + s.totals.faults_write_miss +
                    s.totals.faults_upgrade;
  std::printf(
      "dsm-sim: %llu seeds (%llu-%llu) nodes %u-%u pages %llu ops %u threads "
      "%u faults %s%s: no violation\n"
      "  %llu steps, %llu reads, %llu writes, %llu accesses to lost pages, "
      "%llu crashes, %llu remote faults, %.2f messages per remote fault, "
      "%llu steps under the liveness bound (longest fault %llu steps, bound "
      "%llu), %.1f s\n",
      static_cast<unsigned long long>(seeds),
      static_cast<unsigned long long>(a.seed_first),
      static_cast<unsigned long long>(a.seed_last), a.nodes_min, a.nodes_max,
      static_cast<unsigned long long>(a.config.pages), a.config.ops,
      a.config.threads, a.faults.c_str(), Switches(a.config, "").c_str(),
      static_cast<unsigned long long>(steps),
      static_cast<unsigned long long>(reads),
      static_cast<unsigned long long>(writes),
      static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(crashes),
      static_cast<unsigned long long>(misses),
      misses ? static_cast<double>(s.totals.messages_sent()) / misses : 0.0,
      static_cast<unsigned long long>(calm),
      static_cast<unsigned long long>(worst),
      static_cast<unsigned long long>(bound), secs);
  std::printf(
      "  run grants: %llu pages granted in read runs, %llu in write runs "
      "(%llu refused) (--runs %u)\n",
      static_cast<unsigned long long>(s.totals.run_pages_granted),
      static_cast<unsigned long long>(s.totals.write_run_pages_granted),
      static_cast<unsigned long long>(s.totals.write_run_pages_refused),
      a.config.run_pages);
  std::printf("  messages:");
  for (int t = 1; t < kNumMsgTypes; ++t) {
    if (s.totals.sent[t] == 0) continue;
    std::printf(" %s=%llu", MsgTypeName(static_cast<MsgType>(t)),
                static_cast<unsigned long long>(s.totals.sent[t]));
  }
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  return a.exhaustive ? RunExhaustive(a) : RunSeeds(a);
}
