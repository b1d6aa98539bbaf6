#include "ssihv/base/file_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
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
