#include "guest_report.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "ssihv/acpi/hmat.h"
#include "ssihv/cluster/layout.h"

namespace ssihv::testing {

using cluster::ClusterConfig;
using cluster::GuestLayout;

// tests/linux-boot/cache/boot.env, written by prepare.sh (the CTest fixture
// linux_boot_prepare runs it first).
BootFiles LoadBootEnv(const std::string& default_path) {
  const char* override_path = std::getenv("SSIHV_BOOT_ENV");
  std::string path = override_path ? override_path : default_path;
  std::ifstream in(path);
  INFO("boot.env: " << path << " (run tests/linux-boot/prepare.sh)");
  REQUIRE(in.good());
  BootFiles files;
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "LINUX_BOOT_KERNEL") files.kernel = value;
    if (key == "LINUX_BOOT_INITRD") files.initrd = value;
  }
  REQUIRE(!files.kernel.empty());
  REQUIRE(!files.initrd.empty());
  return files;
}

std::map<std::string, std::string> Fields(absl::string_view line) {
  std::map<std::string, std::string> out;
  for (absl::string_view tok : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    auto eq = tok.find('=');
    if (eq != absl::string_view::npos) {
      out[std::string(tok.substr(0, eq))] = std::string(tok.substr(eq + 1));
    }
  }
  return out;
}

namespace {

std::vector<uint64_t> Numbers(const std::string& csv) {
  std::vector<uint64_t> out;
  for (absl::string_view t : absl::StrSplit(csv, ',', absl::SkipEmpty())) {
    uint64_t v = 0;
    if (absl::SimpleAtoi(t, &v)) out.push_back(v);
  }
  return out;
}

uint64_t Number(const std::map<std::string, std::string>& f,
                const std::string& key) {
  uint64_t v = 0;
  auto it = f.find(key);
  if (it == f.end() || !absl::SimpleAtoi(it->second, &v)) return ~0ull;
  return v;
}

// "[  672.271181] reboot: Power down" -> 672.271181; -1 without a stamp.
double KernelStamp(absl::string_view line) {
  double at = -1;
  const size_t end = line.find(']');
  if (line.empty() || line[0] != '[' || end == absl::string_view::npos ||
      !absl::SimpleAtod(absl::StripAsciiWhitespace(line.substr(1, end - 1)),
                        &at)) {
    return -1;
  }
  return at;
}

}  // namespace

GuestReport ParseReport(const std::string& console) {
  GuestReport r;
  static const std::regex srat_re(
      R"(SRAT: Node (\d+) PXM \d+ \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\])");
  std::istringstream in(console);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find("SSIHV_INIT_REACHED") != std::string::npos)
      r.reached_init = true;
    if (line == "SSIHV_DONE") r.done = true;
    if (line.rfind("SSIHV_COHERENCE ", 0) == 0 &&
        line.rfind("SSIHV_COHERENCE start", 0) != 0) {
      r.coherence = line;
    }
    if (line.find("reboot: Power down") != std::string::npos ||
        line.find("reboot: Restarting system") != std::string::npos) {
      r.end_uptime_s = KernelStamp(line);
    }
    if (line.rfind("SSIHV ", 0) != 0) continue;
    std::smatch m;
    if (std::regex_search(line, m, srat_re)) {
      r.srat.insert({static_cast<uint32_t>(std::stoul(m[1])),
                     std::stoull(m[2], nullptr, 16),
                     std::stoull(m[3], nullptr, 16)});
      continue;
    }
    auto f = Fields(line);
    if (line.rfind("SSIHV cpu_nodes", 0) == 0) {
      for (const auto& [k, v] : f) {
        uint32_t cpu = 0, node = 0;
        if (k.rfind("cpu", 0) == 0 && absl::SimpleAtoi(k.substr(3), &cpu) &&
            absl::SimpleAtoi(v, &node)) {
          r.cpu_node[cpu] = node;
        }
      }
      continue;
    }
    if (line.rfind("SSIHV kernel_phys ", 0) == 0) {
      uint64_t start = 0, end = 0;
      if (absl::SimpleHexAtoi(f["start"], &start) &&
          absl::SimpleHexAtoi(f["end"], &end) && start <= end && end != 0) {
        r.kernel_phys = std::make_pair(start, end);
      }
      continue;
    }
    if (f.count("coherence_exit")) {
      r.coherence_exit = static_cast<int>(Number(f, "coherence_exit"));
      continue;
    }
    const bool done_line = line.rfind("SSIHV report_done ", 0) == 0;
    if (f.count("uptime") && (f.count("kernel") || done_line)) {
      double& at = done_line ? r.done_uptime_s : r.init_uptime_s;
      if (!absl::SimpleAtod(f["uptime"], &at)) at = -1;
    }
    if (line.rfind("SSIHV cpu_clocks ", 0) == 0) {
      r.cpu_clocks = std::string(absl::StripAsciiWhitespace(
          absl::string_view(line).substr(sizeof("SSIHV cpu_clocks ") - 1)));
      continue;
    }
    if (line.rfind("SSIHV clock ", 0) == 0) {
      r.clock_source = f["source"];
      int stable = 0;
      if (absl::SimpleAtoi(f["sched_clock_stable"], &stable)) {
        r.sched_clock_stable = stable > 0 ? 1 : 0;
      }
      uint64_t ns = 0;
      if (absl::SimpleAtoi(f["sched_offset_ns"], &ns)) {
        r.before_clock_s = static_cast<double>(ns) / 1e9;
      }
      int64_t offset_ns = 0;
      if (absl::SimpleAtoi(f["stable_offset_ns"], &offset_ns)) {
        r.stable_offset_s = static_cast<double>(offset_ns) / 1e9;
      }
      continue;
    }
    if (f.count("nproc")) r.nproc = static_cast<int>(Number(f, "nproc"));
    if (f.count("booted_online")) r.booted_online = f["booted_online"];
    if (line.rfind("SSIHV irq4 ", 0) == 0) {
      r.irq4_cpu = static_cast<int64_t>(Number(f, "cpu"));
      r.irq4_count = Number(f, "count");
    }
    if (f.count("nodes")) {
      for (uint64_t n : Numbers(f["nodes"]))
        r.nodes.push_back(static_cast<uint32_t>(n));
    }
    if (f.count("node") && line.rfind("SSIHV hmat ", 0) == 0) {
      NodeReport& n = r.node[static_cast<uint32_t>(Number(f, "node"))];
      n.has_hmat = line.find("missing") == std::string::npos;
      for (uint64_t i : Numbers(f["initiators"]))
        n.initiators.insert(static_cast<uint32_t>(i));
      for (const char* k : {"read_latency", "write_latency", "read_bandwidth",
                            "write_bandwidth"}) {
        n.hmat[k] = Number(f, k);
      }
    } else if (f.count("node")) {
      NodeReport& n = r.node[static_cast<uint32_t>(Number(f, "node"))];
      n.cpulist = f["cpulist"];
      n.memtotal_kb = Number(f, "memtotal_kb");
      n.distance = Numbers(f["distance"]);
    }
  }
  return r;
}

// Linux's cpulist for a node's vCPUs (CPU numbers follow the MADT order,
// which is the global vCPU index).
std::string CpuList(uint32_t first, uint32_t count) {
  if (count == 0) return "";
  if (count == 1) return std::to_string(first);
  return std::to_string(first) + "-" + std::to_string(first + count - 1);
}

// What Linux 6.1 (drivers/acpi/numa/hmat.c) reports as access0 of memory
// node `t`: a node with CPUs is its own (attached) initiator with its
// diagonal values; a memory-only node gets the initiators that are best in
// every metric, with the best latency and bandwidth.
namespace {

struct ExpectedHmat {
  std::set<uint32_t> initiators;
  uint64_t latency_ns;
  uint64_t bandwidth_mbps;
};

// The matrices as the guest reads them, [initiator][target]. The HMAT holds
// each as 16-bit entries times one base unit (libacpi's ScaleToEntries):
// exact for ordinary configs, rounded when the values span more than 16
// bits, as a calibrated cluster's do (local ~200 ns, remote ~1 ms in the
// lab). Linux multiplies back and reports latency in ns, rounded up from ps.
struct GuestMatrices {
  std::vector<std::vector<uint64_t>> latency_ns, bandwidth_mbps;
};

GuestMatrices GuestVisible(const ClusterConfig& c) {
  const uint32_t n = static_cast<uint32_t>(c.num_nodes());
  std::vector<uint64_t> latency_ps, bandwidth;
  for (uint32_t i = 0; i < n; ++i) {
    if (c.nodes[i].vcpus == 0) continue;
    for (uint32_t t = 0; t < n; ++t) {
      latency_ps.push_back(c.memory_latency_ns[i][t] *
                           ssihv::acpi::kPicosecondsPerNanosecond);
      bandwidth.push_back(c.memory_bandwidth_mbps[i][t]);
    }
  }
  const auto lat = ssihv::acpi::ScaleToEntries(latency_ps);
  const auto bw = ssihv::acpi::ScaleToEntries(bandwidth);
  GuestMatrices m;
  m.latency_ns.assign(n, std::vector<uint64_t>(n, 0));
  m.bandwidth_mbps = m.latency_ns;
  size_t k = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (c.nodes[i].vcpus == 0) continue;
    for (uint32_t t = 0; t < n; ++t, ++k) {
      const uint64_t ps = lat.entries[k] * lat.base_unit;
      m.latency_ns[i][t] = (ps + 999) / 1000;
      m.bandwidth_mbps[i][t] = bw.entries[k] * bw.base_unit;
    }
  }
  return m;
}

ExpectedHmat ExpectHmat(const ClusterConfig& c, const GuestMatrices& m,
                        uint32_t t) {
  if (c.nodes[t].vcpus > 0) {
    return {{t}, m.latency_ns[t][t], m.bandwidth_mbps[t][t]};
  }
  ExpectedHmat e{{}, ~0ull, 0};
  for (uint32_t i = 0; i < c.num_nodes(); ++i) {
    if (c.nodes[i].vcpus == 0) continue;
    e.latency_ns = std::min(e.latency_ns, m.latency_ns[i][t]);
    e.bandwidth_mbps = std::max(e.bandwidth_mbps, m.bandwidth_mbps[i][t]);
  }
  for (uint32_t i = 0; i < c.num_nodes(); ++i) {
    if (c.nodes[i].vcpus > 0 && m.latency_ns[i][t] == e.latency_ns &&
        m.bandwidth_mbps[i][t] == e.bandwidth_mbps) {
      e.initiators.insert(i);
    }
  }
  return e;
}

}  // namespace

void CheckGuestMatches(const ClusterConfig& config, const GuestReport& g) {
  const GuestLayout layout(config);
  CHECK(g.nproc == static_cast<int>(layout.total_vcpus()));
  std::vector<uint32_t> want_nodes;
  for (uint32_t n = 0; n < config.num_nodes(); ++n) want_nodes.push_back(n);
  CHECK(g.nodes == want_nodes);

  std::set<std::tuple<uint32_t, uint64_t, uint64_t>> want_srat;
  for (const auto& r : layout.ranges())
    want_srat.insert({r.node, r.gpa, r.end() - 1});
  CHECK(g.srat == want_srat);

  std::map<uint32_t, uint32_t> want_cpu_node;
  for (uint32_t v = 0; v < layout.total_vcpus(); ++v) {
    want_cpu_node[v] = layout.NodeOfVcpu(v);
  }
  CHECK(g.cpu_node == want_cpu_node);

  const GuestMatrices visible = GuestVisible(config);
  for (uint32_t n = 0; n < config.num_nodes(); ++n) {
    INFO("node " << n);
    auto it = g.node.find(n);
    REQUIRE(it != g.node.end());
    const NodeReport& got = it->second;
    CHECK(got.cpulist ==
          CpuList(layout.FirstVcpuOfNode(n), layout.VcpusOfNode(n)));
    std::vector<uint64_t> row(config.distances[n].begin(),
                              config.distances[n].end());
    CHECK(got.distance == row);
    // MemTotal: at most the node's RAM, less at most what the kernel keeps
    // for itself there: its image and boot allocations (KASLR picks the
    // node), and the node's struct pages (64 bytes per 4 KiB page).
    const uint64_t node_kb = config.nodes[n].memory_mib * 1024;
    CHECK(got.memtotal_kb <= node_kb);
    CHECK(got.memtotal_kb + 128 * 1024 + node_kb / 50 >= node_kb);
    REQUIRE(got.has_hmat);
    ExpectedHmat want = ExpectHmat(config, visible, n);
    CHECK(got.initiators == want.initiators);
    CHECK(got.hmat.at("read_latency") == want.latency_ns);
    CHECK(got.hmat.at("write_latency") == want.latency_ns);
    CHECK(got.hmat.at("read_bandwidth") == want.bandwidth_mbps);
    CHECK(got.hmat.at("write_bandwidth") == want.bandwidth_mbps);
  }
}

}  // namespace ssihv::testing
