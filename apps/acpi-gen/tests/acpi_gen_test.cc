// acpi-gen as a user runs it: exit codes, one-line errors, and no file left
// in the output directory by a failed run.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "ssihv/base/file_util.h"

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string Drain(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) s.append(buf, n);
  return s;
}

// Runs acpi-gen; with `as_nobody` the child drops to uid/gid 65534 first
// (how the tests get an unwritable directory when they run as root).
Result Run(std::vector<std::string> args, bool as_nobody = false) {
  int out[2], err[2];
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::close(out[0]);
    ::close(err[0]);
    if (as_nobody && (::setgid(65534) != 0 || ::setuid(65534) != 0)) {
      ::perror("setuid nobody");
      ::_exit(126);
    }
    std::vector<char*> argv = {const_cast<char*>(SSIHV_ACPI_GEN)};
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(SSIHV_ACPI_GEN, argv.data());
    ::perror("execv");
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  Result r;
  // stderr is small; read stdout first (it may be large), then stderr.
  r.out = Drain(out[0]);
  r.err = Drain(err[0]);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  r.exit_code = WEXITSTATUS(status);
  return r;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = fs::temp_directory_path() / "acpi_gen_test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
  }
  std::string path() const { return path_; }
  std::string operator/(const std::string& name) const {
    return path_ + "/" + name;
  }

 private:
  std::string path_;
};

std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  REQUIRE(f.good());
}

std::string Golden(const std::string& topology, const std::string& table) {
  auto g = ssihv::base::ReadFile(std::string(SSIHV_ACPI_GOLDEN_DIR) + "/" +
                                 topology + "/" + table + ".dat");
  REQUIRE(g.ok());
  return *g;
}

std::string FileText(const std::string& path) {
  auto f = ssihv::base::ReadFile(path);
  REQUIRE(f.ok());
  return *f;
}

// One line on stderr, starting with the program name.
void CheckOneLineError(const Result& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK(r.err.rfind("acpi-gen: error: ", 0) == 0);
  CHECK(r.err.find('\n') == r.err.size() - 1);
  CHECK(r.err.find(needle) != std::string::npos);
  CHECK(r.out.empty());
}

const char kBadConfig[] =
    R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 3}]})";

TEST_CASE("--help prints usage and exits 0") {
  Result r = Run({"--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("Usage: acpi-gen") == 0);
  CHECK(r.out.find("--tables") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("Default config: --out writes srat, slit and hmat only") {
  TempDir dir;
  Result r = Run({"--out", dir.path()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.empty());
  CHECK(Entries(dir.path()) ==
        std::set<std::string>{"srat.dat", "slit.dat", "hmat.dat"});
  for (const char* t : {"srat", "slit", "hmat"}) {
    CHECK(FileText(dir / (std::string(t) + ".dat")) ==
          Golden("two_node_default", t));
  }
  // A second run replaces the files in place.
  REQUIRE(Run({"--out", dir.path()}).exit_code == 0);
  CHECK(Entries(dir.path()).size() == 3);
}

TEST_CASE("--tables all writes the eight golden tables of a config") {
  TempDir dir;
  std::string cfg = std::string(SSIHV_ACPI_GOLDEN_DIR) +
                    "/three_node_asymmetric/cluster.json";
  Result r = Run({"--config", cfg, "--out=" + dir.path(), "--tables", "all"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::set<std::string> all = {"rsdp.dat", "xsdt.dat", "facp.dat",
                                     "dsdt.dat", "apic.dat", "srat.dat",
                                     "slit.dat", "hmat.dat"};
  CHECK(Entries(dir.path()) == all);
  for (const std::string& f : all) {
    std::string t = f.substr(0, 4);
    CHECK(FileText(dir / f) == Golden("three_node_asymmetric", t));
  }
}

TEST_CASE("--tables takes a list; madt and fadt are aliases") {
  TempDir dir;
  Result r = Run({"--out", dir.path(), "--tables", "madt,srat,fadt"});
  REQUIRE(r.exit_code == 0);
  CHECK(Entries(dir.path()) ==
        std::set<std::string>{"apic.dat", "srat.dat", "facp.dat"});
  r = Run({"--out", dir.path(), "--tables", "srat,bogus"});
  CHECK(r.exit_code == 2);
  CheckOneLineError(r, "--tables: unknown table \"bogus\"");
}

TEST_CASE("--dump prints the decode and writes nothing without --out") {
  Result r = Run({"--dump"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("2 nodes, 4 vCPUs, 2048 MiB") != std::string::npos);
  CHECK(r.out.find("Signature : \"SRAT\"") != std::string::npos);
  CHECK(r.out.find("Locality   1 : 14 0A") != std::string::npos);
  CHECK(r.out.find("(PD 1 -> 0: 5000 ns)") != std::string::npos);
  CHECK(r.out.find("\"FACP\"") == std::string::npos);
  r = Run({"--dump", "--tables", "all"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("RSD PTR") != std::string::npos);
  CHECK(r.out.find("Device (COM1)") != std::string::npos);
}

TEST_CASE("Placement flags move the tables and the RSDP") {
  TempDir dir;
  Result r = Run({"--out", dir.path(), "--tables", "rsdp,xsdt", "--tables-addr",
                  "0x100000", "--rsdp-addr", "917504"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::string rsdp = FileText(dir / "rsdp.dat");
  REQUIRE(rsdp.size() == 36);
  uint64_t xsdt = 0;
  for (int i = 7; i >= 0; --i) xsdt = xsdt << 8 | uint8_t(rsdp[24 + i]);
  CHECK(xsdt == 0x100000);
}

TEST_CASE("Usage errors exit 2 with one line and write nothing") {
  TempDir dir;
  Result r = Run({"--out", dir.path(), "--bogus"});
  CHECK(r.exit_code == 2);
  CheckOneLineError(r, "unknown argument \"--bogus\"");
  r = Run({});
  CHECK(r.exit_code == 2);
  CheckOneLineError(r, "nothing to do");
  r = Run({"--out"});
  CHECK(r.exit_code == 2);
  CheckOneLineError(r, "--out: needs a value");
  r = Run({"--out", dir.path(), "--tables", "all", "--tables-addr", "0xE0008"});
  CHECK(r.exit_code == 2);
  CheckOneLineError(r, "placement.tables_gpa");
  r = Run({"--out", dir.path(), "--rsdp-addr", "0xzz"});
  CHECK(r.exit_code == 2);
  CheckOneLineError(r, "--rsdp-addr: \"0xzz\" is not an address");
  CHECK(Entries(dir.path()).empty());
}

TEST_CASE("Config errors exit 3 naming the key path and write nothing") {
  TempDir dir;
  TempDir cfgdir;
  WriteText(cfgdir / "bad.json", kBadConfig);
  Result r = Run({"--config", cfgdir / "bad.json", "--out", dir.path()});
  CHECK(r.exit_code == 3);
  CheckOneLineError(r, "nodes[0].memory_mib: must be a positive multiple of 2");
  WriteText(
      cfgdir / "typo.json",
      R"({"nodes": [{"id": 0, "vcpus": 1, "memory_mib": 2}], "distance": []})");
  r = Run({"--config", cfgdir / "typo.json", "--out", dir.path()});
  CHECK(r.exit_code == 3);
  CheckOneLineError(r, "distance: unknown key");
  r = Run({"--config", cfgdir / "missing.json", "--out", dir.path()});
  CHECK(r.exit_code == 3);
  CheckOneLineError(r, "missing.json");
  CHECK(Entries(dir.path()).empty());
}

TEST_CASE("Output directory errors exit 4 and leave no file behind") {
  TempDir dir;
  Result r = Run({"--out", dir / "absent"});
  CHECK(r.exit_code == 4);
  CheckOneLineError(r, "absent");
  WriteText(dir / "plain", "x");
  r = Run({"--out", dir / "plain"});
  CHECK(r.exit_code == 4);
  CheckOneLineError(r, "not a directory");
  CHECK(Entries(dir.path()) == std::set<std::string>{"plain"});
}

TEST_CASE("An unwritable directory exits 4 and stays empty") {
  TempDir dir;
  // Root ignores permission bits, so as root the child runs as nobody
  // against a directory only root may write.
  const bool root = ::geteuid() == 0;
  REQUIRE(::chmod(dir.path().c_str(), root ? 0755 : 0555) == 0);
  Result r = Run({"--out", dir.path(), "--tables", "all"}, root);
  CHECK(r.exit_code == 4);
  CheckOneLineError(r, "Permission denied");
  CHECK(Entries(dir.path()).empty());
}

TEST_CASE("A failure midway removes what the run already wrote") {
  TempDir dir;
  // srat.dat is renamed into place first; slit.dat is taken by a non-empty
  // directory, so its rename fails and srat.dat must be removed again.
  fs::create_directory(dir / "slit.dat");
  WriteText(dir / "slit.dat/keep", "x");
  Result r = Run({"--out", dir.path()});
  CHECK(r.exit_code == 4);
  CheckOneLineError(r, "rename");
  CHECK(Entries(dir.path()) == std::set<std::string>{"slit.dat"});
  CHECK(Entries(dir / "slit.dat") == std::set<std::string>{"keep"});
}

TEST_CASE("A config too large for the BIOS area still gets its NUMA tables") {
  TempDir dir;
  TempDir cfgdir;
  WriteText(cfgdir / "big.json", R"({"nodes": [
      {"id": 0, "vcpus": 2048, "memory_mib": 1024},
      {"id": 1, "vcpus": 2048, "memory_mib": 1024}]})");
  Result r = Run({"--config", cfgdir / "big.json", "--out", dir.path()});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(Entries(dir.path()).size() == 3);
  TempDir all;
  r = Run({"--config", cfgdir / "big.json", "--out", all.path(), "--tables",
           "all"});
  CHECK(r.exit_code == 2);
  CheckOneLineError(r, "BIOS area");
  CHECK(Entries(all.path()).empty());
  r = Run({"--config", cfgdir / "big.json", "--out", all.path(), "--tables",
           "all", "--rsdp-addr", "0xE0000", "--tables-addr", "0xBFF00000"});
  CHECK(r.exit_code == 0);
  CHECK(Entries(all.path()).size() == 8);
}

}  // namespace
