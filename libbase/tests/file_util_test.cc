#include "ssihv/base/file_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

using ssihv::base::ReadFile;
using ssihv::base::WriteFileAtomically;

static std::string MakeTempDir() {
  char tmpl[] = "/tmp/ssihv_base_test.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

static int CountEntries(const std::string& dir) {
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = ::readdir(d)) {
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") ++n;
  }
  ::closedir(d);
  return n;
}

TEST_CASE("WriteFileAtomically then ReadFile round-trips, replacing") {
  std::string dir = MakeTempDir();
  std::string path = dir + "/f.bin";
  std::string data("a\0b", 3);
  REQUIRE(WriteFileAtomically(path, data).ok());
  REQUIRE(WriteFileAtomically(path, "second").ok());
  auto back = ReadFile(path);
  REQUIRE(back.ok());
  CHECK(*back == "second");
  CHECK(CountEntries(dir) == 1);  // no temporary left behind
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("WriteFileAtomically into a missing directory fails cleanly") {
  auto st = WriteFileAtomically("/nonexistent-ssihv-dir/x", "data");
  CHECK(st.code() == absl::StatusCode::kNotFound);
  CHECK(st.message().find("/nonexistent-ssihv-dir/x") != absl::string_view::npos);
}

TEST_CASE("ReadFile names the path on error") {
  auto r = ReadFile("/nonexistent-ssihv-file");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "open /nonexistent-ssihv-file: No such file or directory");
}

static std::string WriteWithMode(const std::string& dir,
                                 const std::string& name,
                                 const std::string& contents, mode_t mode) {
  std::string path = dir + "/" + name;
  REQUIRE(WriteFileAtomically(path, contents).ok());
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  return path;
}

TEST_CASE(
    "ReadPrivateFile refuses what others may read, non-files, big files") {
  using ssihv::base::ReadPrivateFile;
  std::string dir = MakeTempDir();
  std::string ok = WriteWithMode(dir, "ok", "s3cret\n", 0600);
  auto r = ReadPrivateFile("api_token_file", ok, 64);
  REQUIRE(r.ok());
  CHECK(*r == "s3cret\n");  // verbatim: callers decide about newlines
  CHECK(ReadPrivateFile("k", WriteWithMode(dir, "ro", "x", 0400), 64).ok());

  for (mode_t mode : {0640, 0604, 0620, 0602, 0644}) {
    CAPTURE(mode);
    std::string p = WriteWithMode(dir, "open", "x", mode);
    auto st = ReadPrivateFile("api_token_file", p, 64).status();
    CHECK(st.code() == absl::StatusCode::kPermissionDenied);
    char expected[8];
    std::snprintf(expected, sizeof(expected), "0%03o", mode);
    CHECK(st.message() ==
          "api_token_file " + p + ": mode " + expected +
              " lets group or others access it; run chmod 600 " + p);
  }
  auto big = ReadPrivateFile("k", ok, 3).status();
  CHECK(big.code() == absl::StatusCode::kInvalidArgument);
  CHECK(big.message() == "k " + ok + ": longer than 3 bytes");
  auto notfile = ReadPrivateFile("k", dir, 64).status();
  CHECK(notfile.code() == absl::StatusCode::kInvalidArgument);
  CHECK(notfile.message() == "k " + dir + ": not a regular file");
  auto missing = ReadPrivateFile("k", dir + "/none", 64).status();
  CHECK(missing.code() == absl::StatusCode::kNotFound);
  CHECK(missing.message() ==
        "open k " + dir + "/none: No such file or directory");
  for (const char* f : {"ok", "ro", "open"}) ::unlink((dir + "/" + f).c_str());
  ::rmdir(dir.c_str());
}
