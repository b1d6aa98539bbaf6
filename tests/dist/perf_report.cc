#include "perf_report.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "guest_report.h"

namespace ssihv::testing {
namespace {

constexpr uint64_t kStartKernelMap = 0xffffffff80000000ull;

bool Number(const std::map<std::string, std::string>& f, const char* key,
            double* out) {
  auto it = f.find(key);
  return it != f.end() && absl::SimpleAtod(it->second, out);
}

bool ParseIpi(absl::string_view line, const GuestReport& g, RunResult* r) {
  auto f = Fields(line);
  std::pair<std::string, std::string> cpus =
      absl::StrSplit(f["cpus"], absl::MaxSplits(',', 1));
  IpiSample s;
  if (!absl::SimpleAtoi(cpus.first, &s.cpu_a) ||
      !absl::SimpleAtoi(cpus.second, &s.cpu_b) ||
      !Number(f, "rtt_ns_median", &s.median_ns) ||
      !Number(f, "rounds", &s.rounds) || !g.cpu_node.count(s.cpu_a) ||
      !g.cpu_node.count(s.cpu_b)) {
    return false;
  }
  s.same_node = g.cpu_node.at(s.cpu_a) == g.cpu_node.at(s.cpu_b);
  r->ipi.push_back(s);
  return true;
}

bool ParseIo(absl::string_view line, const GuestReport& g, RunResult* r) {
  auto f = Fields(line);
  IoSample s;
  if (!absl::SimpleAtoi(f["cpu"], &s.cpu) ||
      !Number(f, "ns_median", &s.median_ns) || !g.cpu_node.count(s.cpu)) {
    return false;
  }
  s.node = g.cpu_node.at(s.cpu);
  r->iortt.push_back(s);
  return true;
}

// "SSIHV cpubench[-clock] threads=N ... ops_per_s=X": the total.
bool ParseCpubenchTotal(absl::string_view line, double* mops, int* threads) {
  auto f = Fields(line);
  double n = 0;
  if (!Number(f, "ops_per_s", mops) || !Number(f, "threads", &n)) return false;
  *threads = static_cast<int>(n);
  return true;
}

// "SSIHV cpubench cpu=C node=K mops=X": one thread's rate, by node.
bool ParseCpubenchThread(absl::string_view line, RunResult* r) {
  auto f = Fields(line);
  int node = 0;
  double mops = 0;
  if (!absl::SimpleAtoi(f["node"], &node) || !Number(f, "mops", &mops)) {
    return false;
  }
  r->cpubench_node_mops[node] += mops;
  return true;
}

// "SSIHV irqs before|after uptime=U KIND: N0 N1 ...": the guest's
// interrupt counts by CPU at uptime U, into (*counts)[when][KIND].
struct IrqCounts {
  double uptime = 0;
  std::vector<double> by_cpu;
};
using IrqSnapshots = std::map<std::string, std::map<std::string, IrqCounts>>;

bool ParseIrqs(absl::string_view line, IrqSnapshots* counts) {
  std::vector<absl::string_view> w =
      absl::StrSplit(line, ' ', absl::SkipEmpty());
  IrqCounts c;
  if (w.size() < 6 || (w[2] != "before" && w[2] != "after") ||
      !absl::ConsumePrefix(&w[3], "uptime=") ||
      !absl::SimpleAtod(w[3], &c.uptime) || !absl::ConsumeSuffix(&w[4], ":")) {
    return false;
  }
  for (size_t i = 5; i < w.size(); ++i) {
    double n = 0;
    if (!absl::SimpleAtod(w[i], &n)) return false;
    c.by_cpu.push_back(n);
  }
  (*counts)[std::string(w[2])][std::string(w[4])] = c;
  return true;
}

// Per CPU per second between the two snapshots of each kind.
std::map<std::string, std::vector<double>> IrqRates(const IrqSnapshots& s) {
  std::map<std::string, std::vector<double>> rates;
  auto before = s.find("before"), after = s.find("after");
  if (before == s.end() || after == s.end()) return rates;
  for (const auto& [kind, b] : before->second) {
    auto a = after->second.find(kind);
    if (a == after->second.end() ||
        a->second.by_cpu.size() != b.by_cpu.size() ||
        a->second.uptime <= b.uptime) {
      continue;
    }
    std::vector<double>& r = rates[kind];
    for (size_t cpu = 0; cpu < b.by_cpu.size(); ++cpu) {
      r.push_back((a->second.by_cpu[cpu] - b.by_cpu[cpu]) /
                  (a->second.uptime - b.uptime));
    }
  }
  return rates;
}

}  // namespace

bool ParseGuestPerf(const std::string& console, RunResult* r) {
  const GuestReport g = ParseReport(console);
  r->guest_init_uptime_s = g.init_uptime_s;
  r->guest_before_clock_s = g.before_clock_s.value_or(-1);
  r->guest_stable_offset_s = g.stable_offset_s;
  bool cpubench = false;
  IrqSnapshots irqs;
  for (absl::string_view line : absl::StrSplit(console, '\n')) {
    line = absl::StripSuffix(line, "\r");
    const size_t at = line.find("SSIHV ");
    if (at == absl::string_view::npos) continue;
    line.remove_prefix(at);
    if (absl::StartsWith(line, "SSIHV cpubench threads=")) {
      if (!ParseCpubenchTotal(line, &r->cpubench_mops, &r->cpubench_threads)) {
        return false;
      }
      cpubench = true;
    } else if (absl::StartsWith(line, "SSIHV cpubench cpu=")) {
      if (!ParseCpubenchThread(line, r)) return false;
    } else if (absl::StartsWith(line, "SSIHV cpubench-clock threads=")) {
      int threads = 0;
      if (!ParseCpubenchTotal(line, &r->cpubench_clock_mops, &threads)) {
        return false;
      }
    } else if (absl::StartsWith(line, "SSIHV ipi rounds=")) {
      if (!ParseIpi(line, g, r)) return false;
    } else if (absl::StartsWith(line, "SSIHV iortt cpu=")) {
      if (!ParseIo(line, g, r)) return false;
    } else if (absl::StartsWith(line, "SSIHV irqs ")) {
      if (!ParseIrqs(line, &irqs)) return false;
    } else if (absl::StartsWith(line, "SSIHV trace ")) {
      if (!ParseTraceLine(line, &r->cpubench_trace)) return false;
    } else if (absl::StartsWith(line, "SSIHV cpubench failed") ||
               absl::StartsWith(line, "SSIHV iortt failed") ||
               absl::StartsWith(line, "SSIHV ipi failed")) {
      return false;
    }
  }
  r->cpubench_irqs_per_s = IrqRates(irqs);
  return cpubench && !r->ipi.empty() && !r->iortt.empty();
}

std::string ThreadKind(absl::string_view comm) {
  while (!comm.empty() && comm.back() >= '0' && comm.back() <= '9') {
    comm.remove_suffix(1);
  }
  return std::string(comm);
}

bool ParseTaskStat(absl::string_view stat, std::string* comm, uint64_t* ticks) {
  // "TID (COMM) STATE ..."; COMM may hold spaces and parentheses, so it
  // ends at the last ')'. utime and stime are the 14th and 15th fields.
  const size_t open = stat.find('(');
  const size_t close = stat.rfind(')');
  if (open == absl::string_view::npos || close == absl::string_view::npos ||
      close < open) {
    return false;
  }
  *comm = std::string(stat.substr(open + 1, close - open - 1));
  std::vector<absl::string_view> f =
      absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipEmpty());
  // f[0] is the state (field 3), so field N is f[N - 3].
  uint64_t utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &utime) ||
      !absl::SimpleAtoi(f[12], &stime)) {
    return false;
  }
  *ticks = utime + stime;
  return true;
}

bool ParseIdleTicks(absl::string_view proc_stat, uint64_t* ticks) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    if (!absl::StartsWith(line, "cpu ")) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t idle = 0, iowait = 0;
    if (f.size() < 6 || !absl::SimpleAtoi(f[4], &idle) ||
        !absl::SimpleAtoi(f[5], &iowait)) {
      return false;
    }
    *ticks = idle + iowait;
    return true;
  }
  return false;
}

std::map<std::string, double> CpuRates(
    const std::map<std::string, uint64_t>& before,
    const std::map<std::string, uint64_t>& after, double seconds, double hz) {
  std::map<std::string, double> out;
  for (const auto& [kind, ticks] : after) {
    auto it = before.find(kind);
    const uint64_t base = it == before.end() ? 0 : it->second;
    const double rate =
        ticks > base ? static_cast<double>(ticks - base) / hz / seconds : 0;
    if (rate >= 0.005) out[kind] = rate;
  }
  return out;
}

namespace {

// The lines of init's kallsyms block, split into its base64 and the rest
// (the marker's own line, kernel messages between lines, broken lines).
struct KallsymsBlock {
  bool has_begin = false;
  bool has_end = false;
  bool complete = false;  // both markers, in order
  int lines = 0;
  std::string base64;
  std::vector<std::string> other;  // the first few
};

KallsymsBlock SplitKallsymsBlock(const std::string& console) {
  KallsymsBlock block;
  const size_t begin = console.find("SSIHV_KALLSYMS_BEGIN");
  const size_t end = console.find("SSIHV_KALLSYMS_END");
  block.has_begin = begin != std::string::npos;
  block.has_end = end != std::string::npos;
  if (!block.has_begin || !block.has_end || end < begin) return block;
  block.complete = true;
  for (absl::string_view line : absl::StrSplit(
           absl::string_view(console).substr(begin, end - begin), '\n')) {
    line = absl::StripSuffix(line, "\r");
    if (line.empty()) continue;
    ++block.lines;
    if (line.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
            "wxyz0123456789+/=") == absl::string_view::npos) {
      absl::StrAppend(&block.base64, line, "\n");
    } else if (block.other.size() < 6) {
      block.other.emplace_back(line.substr(0, 160));
    }
  }
  return block;
}

}  // namespace

std::string KallsymsBlockFaults(const std::string& console) {
  const KallsymsBlock block = SplitKallsymsBlock(console);
  if (!block.complete) {
    return absl::StrCat("no complete block (begin marker ", block.has_begin,
                        ", end marker ", block.has_end, ")");
  }
  return absl::StrCat(block.lines, " lines in the block; not base64 (",
                      "the marker first): ", absl::StrJoin(block.other, " | "));
}

std::string KallsymsFromConsole(const std::string& console) {
  const KallsymsBlock block = SplitKallsymsBlock(console);
  if (!block.complete) return "";
  const std::string& b64 = block.base64;
  char path[] = "/tmp/ssihv-kallsyms.XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return "";
  const bool written =
      ::write(fd, b64.data(), b64.size()) == static_cast<ssize_t>(b64.size());
  ::close(fd);
  std::string text;
  if (written) {
    FILE* p = ::popen(
        absl::StrCat("base64 -d '", path, "' | gzip -dc 2>/dev/null").c_str(),
        "r");
    if (p != nullptr) {
      char buf[65536];
      for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) {
        text.append(buf, n);
      }
      if (::pclose(p) != 0) text.clear();
    }
  }
  std::remove(path);
  return text;
}

SymbolMap::SymbolMap(const std::string& text) {
  std::istringstream in(text);
  std::string addr, type, name;
  while (in >> addr >> type >> name) {
    uint64_t a = 0;
    if (!absl::SimpleHexAtoi(addr, &a) || a < kStartKernelMap) continue;
    if (name == "_text") text_ = a;
    if (name == "_end") end_ = a;
    symbols_.emplace(a, name);  // aliases in file order
  }
}

std::string SymbolMap::Name(uint64_t gpa) const {
  const uint64_t va = gpa + kStartKernelMap;
  if (text_ == 0 || va < text_ || va >= end_) return "";
  auto it = symbols_.upper_bound(va);
  if (it == symbols_.begin()) return "";
  it = symbols_.lower_bound(std::prev(it)->first);  // the first alias
  std::string name = absl::StrCat(it->second, "+0x", absl::Hex(va - it->first));
  // A hot page is rarely hot for the object it starts in: name the objects
  // that start inside it too (the first few).
  constexpr int kMore = 4;
  const uint64_t page_end = (va | 0xfff) + 1;
  int more = 0;
  for (++it; it != symbols_.end() && it->first < page_end; ++it) {
    if (more++ == kMore) {
      absl::StrAppend(&name, ", ...");
      break;
    }
    absl::StrAppend(&name, ", ", it->second);
  }
  return name;
}

std::vector<HotPage> HotPagesBetween(const std::map<uint64_t, uint64_t>& before,
                                     const std::map<uint64_t, uint64_t>& after,
                                     double seconds, const SymbolMap& symbols,
                                     size_t n) {
  std::vector<HotPage> grew;
  for (const auto& [gpa, count] : after) {
    auto it = before.find(gpa);
    const uint64_t was = it == before.end() ? 0 : it->second;
    if (count > was && seconds > 0) {
      grew.push_back({gpa, static_cast<double>(count - was) / seconds, ""});
    }
  }
  std::sort(grew.begin(), grew.end(), [](const HotPage& a, const HotPage& b) {
    return a.per_s != b.per_s ? a.per_s > b.per_s : a.gpa < b.gpa;
  });
  if (grew.size() > n) grew.resize(n);
  for (HotPage& p : grew) p.symbol = symbols.Name(p.gpa);
  return grew;
}

}  // namespace ssihv::testing

namespace ssihv::testing {
namespace {

std::string Cell(double v, int decimals = 1) {
  return v > 0 ? absl::StrFormat("%.*f", decimals, v) : std::string("-");
}

std::string Ratio(double v, double base) {
  return v > 0 && base > 0 ? absl::StrFormat("%.2f", v / base) : "-";
}

// Remote faults per round trip over the cross-node IPI pairs dist_perf
// counted faults for (0: none).
double CrossNodeIpiFaults(const RunResult& r) {
  double faults = 0, rounds = 0;
  for (const IpiSample& s : r.ipi) {
    auto it = r.ipi_remote_faults.find(s.cpu_b);
    if (s.same_node || it == r.ipi_remote_faults.end()) continue;
    faults += it->second;
    rounds += s.rounds;
  }
  return rounds > 0 ? faults / rounds : 0;
}

// The mean of the medians of the samples `pick` accepts (0: none).
template <typename T, typename Pick>
double MeanOf(const std::vector<T>& samples, Pick pick) {
  double sum = 0;
  int n = 0;
  for (const T& s : samples) {
    if (pick(s)) {
      sum += s.median_ns;
      ++n;
    }
  }
  return n ? sum / n : 0;
}

std::string ByNode(const std::map<int, double>& mops) {
  std::string out;
  for (const auto& [node, m] : mops) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", node, ": ", Cell(m));
  }
  return out.empty() ? "-" : out;
}

// "vcpu 1.62, rdmax-data 0.20, idle 0.05": the busiest kinds first.
std::string CpuCell(const RunResult& r) {
  std::vector<std::pair<double, std::string>> kinds;
  for (const auto& [kind, rate] : r.cpubench_cpu) kinds.push_back({rate, kind});
  std::sort(kinds.rbegin(), kinds.rend());
  std::string out;
  for (const auto& [rate, kind] : kinds) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", kind, " ",
                    absl::StrFormat("%.2f", rate));
  }
  if (r.cpubench_idle >= 0) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", "idle ",
                    absl::StrFormat("%.2f", r.cpubench_idle));
  }
  return out.empty() ? "-" : out;
}

void AppendHotPages(std::string* out, const char* when, const std::string& run,
                    double seconds, const std::vector<HotPage>& pages) {
  if (pages.empty()) return;
  absl::StrAppend(out, "\nHottest pages ", when, ", ", run, " (",
                  absl::StrFormat("%.0f", seconds), " s):\n\n",
                  "| GPA | transactions/s | kernel symbol |\n",
                  "| --- | --- | --- |\n");
  for (const HotPage& p : pages) {
    absl::StrAppend(out, "| 0x", absl::Hex(p.gpa), " | ",
                    absl::StrFormat("%.2f", p.per_s), " | ",
                    p.symbol.empty() ? "(not in the kernel image)" : p.symbol,
                    " |\n");
  }
}

// The wall time to init against the guest's own clock: a distributed
// guest's kernel loses the ticks its CPU 0 misses while waiting for pages
// before it moves its timekeeping onto kvm-clock, and keeps the loss as an
// offset (docs/PERFORMANCE.md, "The guest's slow clock"); the one-process
// runs of the same lab boot show how much is the lab's own.
void AppendGuestClock(std::string* out, const std::vector<RunResult>& runs) {
  absl::StrAppend(out,
                  "\n| run | boot to init, wall s | guest uptime at init s "
                  "| VM run before the guest's clock began s "
                  "| wall s the guest's clock did not count "
                  "| kernel clocks behind kvm-clock s |\n"
                  "| --- | --- | --- | --- | --- | --- |\n");
  for (const RunResult& r : runs) {
    const bool known =
        r.guest_init_uptime_s >= 0 && r.guest_before_clock_s >= 0;
    absl::StrAppend(
        out, "| ", r.name, " | ", Cell(r.boot_s), " | ",
        r.guest_init_uptime_s >= 0 ? Cell(r.guest_init_uptime_s) : "-", " | ",
        r.guest_before_clock_s >= 0 ? Cell(r.guest_before_clock_s) : "-", " | ",
        known ? Cell(r.boot_s - r.guest_init_uptime_s - r.guest_before_clock_s)
              : "-",
        " | ", r.guest_stable_offset_s ? Cell(-*r.guest_stable_offset_s) : "-",
        " |\n");
  }
}

// Interrupts per guest CPU per second during cpubench, a row per run that
// printed them.
void AppendIrqs(std::string* out, const std::vector<RunResult>& runs) {
  static const char* const kKinds[] = {"LOC", "RES", "CAL", "TLB"};
  bool header = false;
  for (const RunResult& r : runs) {
    if (r.cpubench_irqs_per_s.empty()) continue;
    if (!header) {
      absl::StrAppend(out,
                      "\nInterrupts per CPU per second of the guest's clock "
                      "during cpubench (CPU 0, 1, ...): LOC the local timer "
                      "(the tick); RES, CAL, TLB IPIs.\n\n| run | LOC | RES "
                      "| CAL | TLB |\n| --- | --- | --- | --- | --- |\n");
      header = true;
    }
    absl::StrAppend(out, "| ", r.name);
    for (const char* kind : kKinds) {
      auto it = r.cpubench_irqs_per_s.find(kind);
      std::string cell = "-";
      if (it != r.cpubench_irqs_per_s.end()) {
        cell = absl::StrJoin(it->second, ", ", [](std::string* o, double v) {
          absl::StrAppend(o, absl::StrFormat("%.1f", v));
        });
      }
      absl::StrAppend(out, " | ", cell);
    }
    absl::StrAppend(out, " |\n");
  }
}

}  // namespace

std::string FormatReport(const std::vector<RunResult>& runs,
                         const std::string& append) {
  // The references: the one-process runs, found by what they are (a
  // subset of the shapes, $SSIHV_DIST_PERF_SHAPES, may leave either out:
  // its ratios are then "-").
  static const RunResult kNone;
  const RunResult* kvm = &kNone;
  const RunResult* user = &kNone;
  for (const RunResult& r : runs) {
    if (r.processes != 1) continue;
    const RunResult*& ref = r.kvm_irqchip ? kvm : user;
    if (ref == &kNone) ref = &r;
  }
  std::string out = absl::StrCat(
      "Kernel command line: `", append, "`; ratios are against \"",
      kvm->name.empty() ? "(not run)" : kvm->name, "\" (KVM irqchip) and \"",
      user->name.empty() ? "(not run)" : user->name, "\" (user irqchip).\n\n",
      "| run | boot to init s | ratio (KVM irqchip) | ratio (user irqchip) "
      "| remote faults to init | remote faults/s in boot "
      "| remote fault p50 ms | cpubench Mops/s "
      "| cpubench ratio (user irqchip) |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const RunResult& r : runs) {
    absl::StrAppend(
        &out, "| ", r.name, " | ", Cell(r.boot_s), " | ",
        Ratio(r.boot_s, kvm->boot_s), " | ", Ratio(r.boot_s, user->boot_s),
        " | ", absl::StrFormat("%.0f", r.remote_faults_at_init), " | ",
        Cell(r.remote_faults_at_init / r.boot_s, 0), " | ",
        Cell(r.remote_p50_ms_at_init, 2), " | ", Cell(r.cpubench_mops), " | ",
        Ratio(r.cpubench_mops, user->cpubench_mops), " |\n");
  }
  absl::StrAppend(&out,
                  "\n| run | cpubench Mops/s by node | cpubench --clock "
                  "Mops/s | --clock ratio (user irqchip) | lab CPUs during "
                  "cpubench, CPU-s/s | remote faults/s during cpubench "
                  "| page requests/s during cpubench |\n"
                  "| --- | --- | --- | --- | --- | --- | --- |\n");
  for (const RunResult& r : runs) {
    absl::StrAppend(&out, "| ", r.name, " | ", ByNode(r.cpubench_node_mops),
                    " | ", Cell(r.cpubench_clock_mops), " | ",
                    Ratio(r.cpubench_clock_mops, user->cpubench_clock_mops),
                    " | ", CpuCell(r), " | ", Cell(r.cpubench_faults_per_s, 1),
                    " | ", Cell(r.cpubench_requests_per_s, 1), " |\n");
  }
  absl::StrAppend(
      &out,
      "\n| run | IPI RTT same node µs | IPI RTT cross node µs | cross/same "
      "| port I/O on node 0 µs | forwarded port I/O µs | forwarded/local "
      "| forwarded round trip in the VMM µs "
      "| remote faults per cross-node IPI round trip "
      "| idle page requests/s | idle transport KB/s |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const RunResult& r : runs) {
    const double same =
        MeanOf(r.ipi, [](const IpiSample& s) { return s.same_node; });
    const double cross =
        MeanOf(r.ipi, [](const IpiSample& s) { return !s.same_node; });
    const double local =
        MeanOf(r.iortt, [](const IoSample& s) { return s.node == 0; });
    const double fwd =
        MeanOf(r.iortt, [](const IoSample& s) { return s.node != 0; });
    absl::StrAppend(&out, "| ", r.name, " | ", Cell(same / 1e3), " | ",
                    Cell(cross / 1e3), " | ", Ratio(cross, same), " | ",
                    Cell(local / 1e3), " | ", Cell(fwd / 1e3), " | ",
                    Ratio(fwd, local), " | ", Cell(r.vmm_forwarded_io_us),
                    " | ", Cell(CrossNodeIpiFaults(r)), " | ",
                    Cell(r.idle_requests_per_s, 2), " | ",
                    Cell(r.idle_bytes_per_s / 1e3, 2), " |\n");
  }
  AppendGuestClock(&out, runs);
  AppendIrqs(&out, runs);
  bool header = true;
  for (const RunResult& r : runs) {
    if (r.cpubench_trace.empty()) continue;
    absl::StrAppend(&out, FormatTraceRows(r.name, r.cpubench_trace, header));
    header = false;
  }
  for (const RunResult& r : runs) {
    AppendHotPages(&out, "until init", r.name, r.boot_s, r.boot_hot);
    AppendHotPages(&out, "during cpubench", r.name, r.cpubench_s,
                   r.cpubench_hot);
    AppendHotPages(&out, "while idle", r.name, r.idle_s, r.idle_hot);
  }
  return out;
}

}  // namespace ssihv::testing
