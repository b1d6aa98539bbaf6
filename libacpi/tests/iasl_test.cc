// The `iasl -d` round trip: every table ssihv generates for the golden
// topologies (and a few more) is disassembled by ACPICA's iasl without an
// error or warning; the fields iasl decodes match the cluster config; and
// iasl recompiles its own disassembly into the same bytes (up to the
// compiler ID it stamps in the header). The RSDP, which this iasl cannot
// disassemble from a file, is compiled from its field values instead.
// iasl comes from acpica-tools (scripts/setup.sh): a missing iasl fails.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "ssihv/acpi/tables.h"
#include "ssihv/base/file_util.h"
#include "test_util.h"

extern char** environ;

namespace ssihv::acpi {
namespace {

namespace fs = std::filesystem;

struct Iasl {
  int exit_code;
  std::string output;
};

// Runs `iasl args...` in `dir` with stdout and stderr captured in a file.
Iasl RunIasl(const std::string& dir, std::vector<std::string> args) {
  const std::string log = dir + "/iasl.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv = {const_cast<char*>("iasl")};
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, "iasl", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    FAIL("cannot run iasl (" << std::strerror(rc)
                             << "): install acpica-tools (scripts/setup.sh)");
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  auto text = base::ReadFile(log);
  REQUIRE(text.ok());
  // iasl reports a missing binary from the child as exit 127.
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) != 127);
  return {WEXITSTATUS(status), *text};
}

// One "[off dec len] Name : Value" line, or a decoded flag line (no offset).
struct Line {
  long offset;  // -1 for decoded flag lines
  std::string name;
  std::string value;
};

std::vector<Line> ParseDsl(const std::string& dsl) {
  static const std::regex field(
      R"(^\[([0-9A-F]+)h +\d+ +\d+\] +(.*?) : (.*)$)");
  static const std::regex flag(R"(^ +(\S.*?) : (\S.*)$)");
  std::vector<Line> out;
  size_t start = 0;
  while (start < dsl.size()) {
    size_t end = dsl.find('\n', start);
    if (end == std::string::npos) end = dsl.size();
    std::string line = dsl.substr(start, end - start);
    start = end + 1;
    if (line.rfind("Raw Table Data", 0) == 0) break;
    std::smatch m;
    if (std::regex_match(line, m, field)) {
      out.push_back({std::stol(m[1], nullptr, 16), m[2], m[3]});
    } else if (std::regex_match(line, m, flag)) {
      out.push_back({-1, m[1], m[2]});
    }
  }
  return out;
}

// "0000000000000064 [...]" / "\"SRAT\"    [...]" -> the leading hex number.
uint64_t Hex(const std::string& value) {
  uint64_t v = 0;
  std::string digits = value.substr(0, value.find(' '));
  INFO("not hex: " << value);
  REQUIRE(absl::SimpleHexAtoi(digits, &v));
  return v;
}

// Records of a table with subtables, split at each "Subtable Type" /
// "Structure Type" line; a record maps field name -> values in order.
using Record = std::multimap<std::string, std::string>;
std::vector<Record> Records(const std::vector<Line>& lines,
                            const std::string& type_field) {
  std::vector<Record> out;
  for (const Line& l : lines) {
    if (l.name == type_field) out.emplace_back();
    if (!out.empty()) out.back().emplace(l.name, l.value);
  }
  return out;
}

std::string One(const Record& r, const std::string& name) {
  INFO("field " << name);
  REQUIRE(r.count(name) == 1);
  return r.find(name)->second;
}

std::vector<std::string> All(const Record& r, const std::string& name) {
  std::vector<std::string> v;
  auto [b, e] = r.equal_range(name);
  for (auto it = b; it != e; ++it) v.push_back(it->second);
  return v;
}

class Workdir {
 public:
  explicit Workdir(const std::string& name) {
    std::string tmpl =
        fs::temp_directory_path() / ("acpi_iasl_" + name + ".XXXXXX");
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~Workdir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void Write(const std::string& path, absl::Span<const uint8_t> bytes) {
  REQUIRE(
      base::WriteFileAtomically(
          path, absl::string_view(reinterpret_cast<const char*>(bytes.data()),
                                  bytes.size()))
          .ok());
}

// iasl -d, then iasl on the disassembly: both clean, bytes preserved.
std::vector<Line> RoundTrip(const std::string& dir, const std::string& name,
                            absl::Span<const uint8_t> table) {
  INFO("table " << name);
  Write(dir + "/" + name + ".dat", table);
  Iasl d = RunIasl(dir, {"-d", name + ".dat"});
  INFO(d.output);
  CHECK(d.exit_code == 0);
  CHECK(d.output.find("rror") == std::string::npos);
  CHECK(d.output.find("arning") == std::string::npos);
  auto dsl = base::ReadFile(dir + "/" + name + ".dsl");
  REQUIRE(dsl.ok());

  Iasl c = RunIasl(dir, {name + ".dsl"});
  INFO(c.output);
  CHECK(c.exit_code == 0);
  CHECK(c.output.find(" 0 Errors, 0 Warnings") != std::string::npos);
  auto aml = base::ReadFile(dir + "/" + name + ".aml");
  REQUIRE(aml.ok());
  Bytes again(aml->begin(), aml->end());
  REQUIRE(again.size() == table.size());
  CHECK(testing::Sum(again) == 0);
  // iasl stamps its own Creator ID/Revision (bytes 28..35) and so a new
  // checksum (byte 9); every other byte must be ours.
  for (size_t i = 0; i < table.size(); ++i) {
    if (i == 9 || (i >= 28 && i < 36)) continue;
    INFO("byte " << i);
    CHECK(again[i] == table[i]);
  }
  return ParseDsl(*dsl);
}

// The RSDP: compiled by iasl's data table compiler from field values
// (this iasl refuses to disassemble an RSDP file); iasl computes both
// checksums, which must equal ours.
void CheckRsdp(const std::string& dir, const AcpiTables& t) {
  const uint64_t xsdt = t.Find("XSDT")->gpa;
  std::string src = absl::StrFormat(
      "[0008] Signature : \"RSD PTR \"\n[0001] Checksum : 00\n"
      "[0006] Oem ID : \"SSIHV \"\n[0001] Revision : 02\n"
      "[0004] RSDT Address : 00000000\n[0004] Length : 00000024\n"
      "[0008] XSDT Address : %016X\n[0001] Extended Checksum : 00\n"
      "[0003] Reserved : 000000\n",
      xsdt);
  REQUIRE(base::WriteFileAtomically(dir + "/rsdp.asl", src).ok());
  Iasl c = RunIasl(dir, {"rsdp.asl"});
  INFO(c.output);
  CHECK(c.exit_code == 0);
  auto aml = base::ReadFile(dir + "/rsdp.aml");
  REQUIRE(aml.ok());
  CHECK(Bytes(aml->begin(), aml->end()) == t.rsdp);
}

// Independent expectations from the config.
struct Expected {
  std::vector<uint32_t> node_of_vcpu;
  struct Range {
    uint32_t node;
    uint64_t base, length;
  };
  std::vector<Range> ranges;
};

Expected Expect(const cluster::ClusterConfig& c) {
  constexpr uint64_t k3G = uint64_t{3} << 30, k4G = uint64_t{4} << 30;
  Expected e;
  uint64_t ram = 0;
  for (const auto& n : c.nodes) {
    for (uint32_t i = 0; i < n.vcpus; ++i) e.node_of_vcpu.push_back(n.id);
    uint64_t start = ram, end = ram + n.memory_mib * (uint64_t{1} << 20);
    if (start < k3G && end > k3G) {
      e.ranges.push_back({n.id, start, k3G - start});
      e.ranges.push_back({n.id, k4G, end - k3G});
    } else {
      e.ranges.push_back(
          {n.id, start < k3G ? start : start + (k4G - k3G), end - start});
    }
    ram = end;
  }
  return e;
}

void CheckSrat(const std::vector<Line>& lines, const cluster::ClusterConfig& c,
               bool remote_nodes_hot_pluggable = false) {
  const Expected e = Expect(c);
  size_t cpu = 0, range = 0;
  for (const Record& r : Records(lines, "Subtable Type")) {
    const uint64_t type = Hex(One(r, "Subtable Type"));
    CHECK(One(r, "Enabled") == "1");
    if (type == 0 || type == 2) {
      REQUIRE(cpu < e.node_of_vcpu.size());
      CHECK(Hex(One(r, "Apic ID")) == cpu);
      CHECK((cpu < 255) == (type == 0));
      uint64_t pd = type == 2
                        ? Hex(One(r, "Proximity Domain"))
                        : Hex(One(r, "Proximity Domain Low(8)")) |
                              Hex(One(r, "Proximity Domain High(24)")) << 8;
      CHECK(pd == e.node_of_vcpu[cpu]);
      ++cpu;
    } else {
      REQUIRE(type == 1);
      REQUIRE(range < e.ranges.size());
      CHECK(Hex(One(r, "Proximity Domain")) == e.ranges[range].node);
      CHECK(Hex(One(r, "Base Address")) == e.ranges[range].base);
      CHECK(Hex(One(r, "Address Length")) == e.ranges[range].length);
      const bool hot_pluggable =
          remote_nodes_hot_pluggable && e.ranges[range].node != 0;
      CHECK(One(r, "Hot Pluggable") == (hot_pluggable ? "1" : "0"));
      ++range;
    }
  }
  CHECK(cpu == e.node_of_vcpu.size());
  CHECK(range == e.ranges.size());
}

void CheckSlit(const std::vector<Line>& lines,
               const cluster::ClusterConfig& c) {
  const size_t n = c.num_nodes();
  std::vector<std::string> rows;
  for (const Line& l : lines) {
    if (l.name == "Localities") CHECK(Hex(l.value) == n);
    if (l.name.rfind("Locality ", 0) == 0) rows.push_back(l.value);
  }
  REQUIRE(rows.size() == n);
  for (size_t i = 0; i < n; ++i) {
    std::string want;
    for (size_t j = 0; j < n; ++j) {
      want += absl::StrFormat("%s%02X", j ? " " : "", c.distances[i][j]);
    }
    CHECK(rows[i] == want);
  }
}

void CheckHmat(const std::vector<Line>& lines,
               const cluster::ClusterConfig& c) {
  std::vector<uint32_t> initiators;
  for (const auto& n : c.nodes) {
    if (n.vcpus > 0) initiators.push_back(n.id);
  }
  auto records = Records(lines, "Structure Type");
  REQUIRE(records.size() == c.num_nodes() + 2);
  for (uint32_t node = 0; node < c.num_nodes(); ++node) {
    const Record& r = records[node];
    CHECK(Hex(One(r, "Structure Type")) == 0);
    CHECK(Hex(One(r, "Memory Proximity Domain")) == node);
    const bool cpu = c.nodes[node].vcpus > 0;
    CHECK(One(r, "Processor Proximity Domain Valid") == (cpu ? "1" : "0"));
    if (cpu) CHECK(Hex(One(r, "Attached Initiator Proximity Domain")) == node);
  }
  for (int k = 0; k < 2; ++k) {
    const Record& r = records[c.num_nodes() + k];
    CHECK(Hex(One(r, "Data Type")) == (k == 0 ? 0u : 3u));
    CHECK(One(r, "Memory Hierarchy") == "0");
    const uint64_t base = Hex(One(r, "Entry Base Unit"));
    std::vector<std::string> init = All(r, "Initiator Proximity Domain List");
    std::vector<std::string> targ = All(r, "Target Proximity Domain List");
    std::vector<std::string> entries = All(r, "Entry");
    REQUIRE(init.size() == initiators.size());
    REQUIRE(targ.size() == c.num_nodes());
    REQUIRE(entries.size() == init.size() * targ.size());
    for (size_t i = 0; i < init.size(); ++i) {
      CHECK(Hex(init[i]) == initiators[i]);
      for (size_t j = 0; j < targ.size(); ++j) {
        CHECK(Hex(targ[j]) == j);
        const uint64_t value = Hex(entries[i * targ.size() + j]) * base;
        // Latency in picoseconds (HMAT revision 2), bandwidth in MB/s; the
        // golden configs are exactly representable.
        CHECK(value == (k == 0 ? c.memory_latency_ns[initiators[i]][j] * 1000
                               : c.memory_bandwidth_mbps[initiators[i]][j]));
      }
    }
  }
}

void CheckMadt(const std::vector<Line>& lines,
               const cluster::ClusterConfig& c) {
  uint32_t next_id = 0;
  int ioapics = 0, overrides = 0;
  for (const Record& r : Records(lines, "Subtable Type")) {
    const uint64_t type = Hex(One(r, "Subtable Type"));
    if (type == 0 || type == 9) {
      const uint64_t id =
          Hex(One(r, type == 0 ? "Local Apic ID" : "Processor x2Apic ID"));
      CHECK(id == next_id);
      CHECK(Hex(One(r, type == 0 ? "Processor ID" : "Processor UID")) ==
            next_id);
      CHECK(One(r, "Processor Enabled") == "1");
      CHECK((id < 255) == (type == 0));
      ++next_id;
    } else if (type == 1) {
      ++ioapics;
      CHECK(Hex(One(r, "Address")) == 0xFEC00000);
      CHECK(Hex(One(r, "Interrupt")) == 0);
    } else if (type == 2) {
      ++overrides;
      CHECK(Hex(One(r, "Source")) == 0);
      CHECK(Hex(One(r, "Interrupt")) == 2);
    }
  }
  CHECK(next_id == c.total_vcpus());
  CHECK(ioapics == 1);
  CHECK(overrides == 1);
}

void CheckFadt(const std::vector<Line>& lines, const AcpiTables& t) {
  std::map<std::string, std::string> f;
  for (const Line& l : lines) f.emplace(l.name, l.value);  // first wins
  CHECK(f["Hardware Reduced (V5)"] == "1");
  CHECK(f["Reset Register Supported (V2)"] == "1");
  CHECK(Hex(f["Value to cause reset"]) == 0xFE);
  CHECK(Hex(f["DSDT Address"]) == t.Find("DSDT")->gpa);
  std::vector<uint64_t> addresses;
  for (const Line& l : lines) {
    if (l.name == "Address") addresses.push_back(Hex(l.value));
  }
  // RESET_REG, 8 absent X_ blocks, SLEEP_CONTROL_REG, SLEEP_STATUS_REG.
  REQUIRE(addresses.size() == 11);
  CHECK(addresses[0] == 0x64);
  CHECK(addresses[9] == 0x600);
  CHECK(addresses[10] == 0x601);
}

void CheckXsdt(const std::vector<Line>& lines, const AcpiTables& t) {
  std::vector<uint64_t> want;
  for (std::string_view sig : kXsdtTables) want.push_back(t.Find(sig)->gpa);
  std::vector<uint64_t> got;
  for (const Line& l : lines) {
    if (l.name.rfind("ACPI Table Address", 0) == 0) got.push_back(Hex(l.value));
  }
  CHECK(got == want);
}

void CheckTopology(const std::string& name, const cluster::ClusterConfig& c) {
  INFO("topology " << name);
  auto t = BuildAcpiTables(c, AcpiOptions{}, {});
  REQUIRE(t.ok());
  Workdir dir(name);
  CheckSrat(RoundTrip(dir.path(), "srat", t->Table("SRAT")), c);
  CheckSlit(RoundTrip(dir.path(), "slit", t->Table("SLIT")), c);
  CheckHmat(RoundTrip(dir.path(), "hmat", t->Table("HMAT")), c);
  CheckMadt(RoundTrip(dir.path(), "apic", t->Table("APIC")), c);
  CheckFadt(RoundTrip(dir.path(), "facp", t->Table("FACP")), *t);
  CheckXsdt(RoundTrip(dir.path(), "xsdt", t->Table("XSDT")), *t);
  RoundTrip(dir.path(), "dsdt", t->Table("DSDT"));
  auto dsl = base::ReadFile(dir.path() + "/dsdt.dsl");
  REQUIRE(dsl.ok());
  CHECK(dsl->find("Name (_S5, Package (0x04)") != std::string::npos);
  CHECK(dsl->find("EisaId (\"PNP0501\")") != std::string::npos);
  CHECK(dsl->find("0x03F8,             // Range Minimum") != std::string::npos);
  CheckRsdp(dir.path(), *t);
}

TEST_CASE("iasl round trip of the golden topologies") {
  for (const char* name : testing::kGoldenTopologies) {
    CheckTopology(name, testing::GoldenConfig(name));
  }
}

TEST_CASE(
    "iasl reads a guest across processes' SRAT: only node 0's memory "
    "is not hot-pluggable") {
  const cluster::ClusterConfig c = testing::Config(R"({"nodes": [
      {"id": 0, "vcpus": 1, "memory_mib": 2048},
      {"id": 1, "vcpus": 2, "memory_mib": 2048},
      {"id": 2, "vcpus": 1, "memory_mib": 512}]})");
  AcpiOptions options;
  options.srat.remote_nodes_hot_pluggable = true;
  auto t = BuildAcpiTables(c, options, {});
  REQUIRE(t.ok());
  Workdir dir("across_processes");
  CheckSrat(RoundTrip(dir.path(), "srat", t->Table("SRAT")), c, true);
}

TEST_CASE("iasl round trip of more edge topologies") {
  // Node 0 exactly fills the RAM below the hole; eight nodes; the x2APIC
  // boundary inside a node; a memory-only node first.
  CheckTopology("fills_below_hole", testing::Config(R"({"nodes": [
      {"id": 0, "vcpus": 3, "memory_mib": 3072},
      {"id": 1, "vcpus": 1, "memory_mib": 1024}]})"));
  std::string eight = R"({"nodes": [)";
  for (int i = 0; i < 8; ++i) {
    eight += absl::StrFormat(R"(%s{"id": %d, "vcpus": %d, "memory_mib": 256})",
                             i ? "," : "", i, 1 + i % 3);
  }
  CheckTopology("eight_nodes", testing::Config(eight + "]}"));
  CheckTopology("x2apic_boundary", testing::Config(R"({"nodes": [
      {"id": 0, "vcpus": 250, "memory_mib": 64},
      {"id": 1, "vcpus": 10, "memory_mib": 64}]})"));
  CheckTopology("memory_only_first", testing::Config(R"({"nodes": [
      {"id": 0, "vcpus": 0, "memory_mib": 128},
      {"id": 1, "vcpus": 2, "memory_mib": 128}]})"));
}

}  // namespace
}  // namespace ssihv::acpi
