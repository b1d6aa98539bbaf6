// acpi-gen: writes (and/or decodes) the ACPI tables ssihv gives a guest for
// a cluster config. Usage and exit codes: docs/acpi-gen.md.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "file_set.h"
#include "ssihv/acpi/dsdt.h"
#include "ssihv/acpi/dump.h"
#include "ssihv/acpi/hmat.h"
#include "ssihv/acpi/madt.h"
#include "ssihv/acpi/slit.h"
#include "ssihv/acpi/srat.h"
#include "ssihv/acpi/tables.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/cluster/config.h"

namespace ssihv::acpigen {
namespace {

// Exit codes (docs/acpi-gen.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,
  kExitUsage = 2,
  kExitConfig = 3,
  kExitOutput = 4,
};

constexpr char kUsage[] =
    R"(Usage: acpi-gen [--config FILE] [--out DIR] [--tables SET] [--dump]
                [--rsdp-addr ADDR] [--tables-addr ADDR]

Generates the ACPI tables ssihv gives a guest for a cluster config and
writes them as acpixtract-style binaries (srat.dat, ...) and/or prints an
iasl-style decode.

  --config FILE       cluster config (JSON, docs/CLUSTER_CONFIG.md); default:
                      the embedded 2-node cluster
  --out DIR           existing directory to write <table>.dat files into;
                      all files are written or none
  --tables SET        numa (default: srat, slit, hmat), all (adds rsdp, xsdt,
                      facp, dsdt, apic), or a comma-separated list of
                      rsdp,xsdt,facp,dsdt,apic,srat,slit,hmat
  --dump              print the decoded tables to stdout
  --tables-addr ADDR  guest address of the tables (default 0xE0000)
  --rsdp-addr ADDR    guest address of a separate RSDP (default: the RSDP
                      comes first at the tables address)
  --help              this text

At least one of --out and --dump is required. Exit status: 0 success,
2 usage error, 3 invalid or unreadable config, 4 output directory error,
1 internal error.
)";

// In acpixtract's order of a full dump; names are its file names' stems.
constexpr const char* kAllTables[] = {"rsdp", "xsdt", "facp", "dsdt",
                                      "apic", "srat", "slit", "hmat"};

struct Args {
  std::string config;
  std::string out;
  std::vector<std::string> tables = {"srat", "slit", "hmat"};
  bool dump = false;
  bool help = false;
  std::optional<uint64_t> tables_addr;
  std::optional<uint64_t> rsdp_addr;
};

struct Failure {
  int code;
  std::string message;
};

absl::StatusOr<uint64_t> ParseAddress(absl::string_view flag,
                                      absl::string_view text) {
  uint64_t v = 0;
  bool ok = absl::StartsWithIgnoreCase(text, "0x")
                ? absl::SimpleHexAtoi(text.substr(2), &v)
                : absl::SimpleAtoi(text, &v);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", text, "\" is not an address"));
  }
  return v;
}

absl::StatusOr<std::vector<std::string>> ParseTables(absl::string_view spec) {
  if (spec == "numa") return std::vector<std::string>{"srat", "slit", "hmat"};
  if (spec == "all") {
    return std::vector<std::string>(std::begin(kAllTables),
                                    std::end(kAllTables));
  }
  std::vector<std::string> wanted;
  for (absl::string_view name : absl::StrSplit(spec, ',')) {
    std::string n(name);
    if (n == "fadt") n = "facp";
    if (n == "madt") n = "apic";
    if (std::find(std::begin(kAllTables), std::end(kAllTables), n) ==
        std::end(kAllTables)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tables: unknown table \"", name,
          "\" (numa, all, or rsdp,xsdt,facp,dsdt,apic,srat,slit,hmat)"));
    }
    if (std::find(wanted.begin(), wanted.end(), n) == wanted.end()) {
      wanted.push_back(n);
    }
  }
  // Emit in the canonical order, whatever order the list had.
  std::vector<std::string> ordered;
  for (const char* t : kAllTables) {
    if (std::find(wanted.begin(), wanted.end(), t) != wanted.end()) {
      ordered.push_back(t);
    }
  }
  return ordered;
}

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> value;
    if (size_t eq = flag.find('=');
        flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    auto take = [&]() -> absl::StatusOr<std::string> {
      if (value) return *value;
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": needs a value"));
      }
      return std::string(argv[++i]);
    };
    if (flag == "--help" || flag == "-h") {
      args.help = true;
    } else if (flag == "--dump" && !value) {
      args.dump = true;
    } else if (flag == "--config") {
      SSIHV_ASSIGN_OR_RETURN(args.config, take());
    } else if (flag == "--out") {
      SSIHV_ASSIGN_OR_RETURN(args.out, take());
    } else if (flag == "--tables") {
      SSIHV_ASSIGN_OR_RETURN(std::string spec, take());
      SSIHV_ASSIGN_OR_RETURN(args.tables, ParseTables(spec));
    } else if (flag == "--tables-addr" || flag == "--rsdp-addr") {
      SSIHV_ASSIGN_OR_RETURN(std::string text, take());
      SSIHV_ASSIGN_OR_RETURN(uint64_t addr, ParseAddress(flag, text));
      (flag == "--rsdp-addr" ? args.rsdp_addr : args.tables_addr) = addr;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown argument \"", argv[i], "\" (see --help)"));
    }
  }
  if (!args.help && args.out.empty() && !args.dump) {
    return absl::InvalidArgumentError(
        "nothing to do: give --out DIR and/or --dump (see --help)");
  }
  return args;
}

bool NeedsPlacement(const std::vector<std::string>& tables) {
  for (const std::string& t : tables) {
    if (t == "rsdp" || t == "xsdt" || t == "facp") return true;
  }
  return false;
}

// The bytes of each selected table. Tables holding guest addresses come
// from a full layout; the others do not depend on the placement, so a
// config too large for the default BIOS-area placement still gets them.
absl::StatusOr<std::vector<OutputFile>> Generate(
    const cluster::ClusterConfig& config, const Args& args) {
  const acpi::AcpiOptions options;
  std::vector<OutputFile> files;
  if (NeedsPlacement(args.tables) || args.tables_addr || args.rsdp_addr) {
    acpi::Placement placement;
    if (args.tables_addr) placement.tables_gpa = *args.tables_addr;
    placement.rsdp_gpa = args.rsdp_addr;
    SSIHV_ASSIGN_OR_RETURN(acpi::AcpiTables t,
                           acpi::BuildAcpiTables(config, options, placement));
    for (const std::string& name : args.tables) {
      absl::Span<const uint8_t> bytes =
          name == "rsdp" ? absl::MakeConstSpan(t.rsdp)
                         : t.Table(absl::AsciiStrToUpper(name));
      files.push_back({name + ".dat", {bytes.begin(), bytes.end()}});
    }
    return files;
  }
  SSIHV_RETURN_IF_ERROR(acpi::ValidateConfigForAcpi(config));
  for (const std::string& name : args.tables) {
    acpi::Bytes bytes =
        name == "dsdt"   ? acpi::BuildDsdt(options.dsdt, options.oem)
        : name == "apic" ? acpi::BuildMadt(config, options.madt, options.oem)
        : name == "srat" ? acpi::BuildSrat(config, options.oem)
        : name == "slit" ? acpi::BuildSlit(config, options.oem)
                         : acpi::BuildHmat(config, options.oem);
    files.push_back({name + ".dat", std::move(bytes)});
  }
  return files;
}

absl::StatusOr<std::string> DumpAll(const cluster::ClusterConfig& config,
                                    const std::vector<OutputFile>& files) {
  std::string text = absl::StrFormat(
      "/* ssihv ACPI tables: %u nodes, %u vCPUs, %u MiB guest RAM */\n",
      config.num_nodes(), config.total_vcpus(),
      config.total_memory_bytes() >> 20);
  for (const OutputFile& f : files) {
    SSIHV_ASSIGN_OR_RETURN(std::string one, acpi::DumpTable(f.contents));
    absl::StrAppend(&text, "\n", one);
  }
  return text;
}

std::optional<Failure> Run(int argc, char** argv) {
  absl::StatusOr<Args> args = ParseArgs(argc, argv);
  if (!args.ok())
    return Failure{kExitUsage, std::string(args.status().message())};
  if (args->help) {
    std::fputs(kUsage, stdout);
    return std::nullopt;
  }
  absl::StatusOr<cluster::ClusterConfig> config =
      args->config.empty() ? cluster::DefaultClusterConfig()
                           : cluster::LoadClusterConfig(args->config);
  if (!config.ok()) {
    return Failure{kExitConfig, std::string(config.status().message())};
  }
  // Everything is generated in memory before anything is written.
  absl::StatusOr<std::vector<OutputFile>> files = Generate(*config, *args);
  if (!files.ok()) {
    // Config rules were checked when it was parsed, so what is left is a
    // placement the user chose that does not work.
    return Failure{kExitUsage, std::string(files.status().message())};
  }
  std::string dump;
  if (args->dump) {
    absl::StatusOr<std::string> d = DumpAll(*config, *files);
    if (!d.ok())
      return Failure{kExitInternal, std::string(d.status().message())};
    dump = *std::move(d);
  }
  if (!args->out.empty()) {
    absl::Status st = WriteFileSet(args->out, *files);
    if (!st.ok()) return Failure{kExitOutput, std::string(st.message())};
  }
  std::fputs(dump.c_str(), stdout);
  return std::nullopt;
}

}  // namespace
}  // namespace ssihv::acpigen

int main(int argc, char** argv) {
  std::optional<ssihv::acpigen::Failure> failure =
      ssihv::acpigen::Run(argc, argv);
  if (!failure) return std::fflush(stdout) == 0 ? 0 : 1;
  std::fprintf(stderr, "acpi-gen: error: %s\n", failure->message.c_str());
  return failure->code;
}
