// api_token_file's rules and the constant-time comparison.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "ssihv/base/file_util.h"
#include "ssihv/control/api.h"

namespace ssihv::control {
namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/ssihv_token_test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    for (const std::string& f : files) ::unlink(f.c_str());
    ::rmdir(path.c_str());
  }
  std::string Write(const std::string& name, const std::string& contents,
                    mode_t mode = 0600) {
    std::string p = path + "/" + name;
    REQUIRE(base::WriteFileAtomically(p, contents).ok());
    REQUIRE(::chmod(p.c_str(), mode) == 0);
    files.push_back(p);
    return p;
  }
  std::string path;
  std::vector<std::string> files;
};

std::string ErrorOf(const std::string& path, absl::StatusCode code) {
  auto r = LoadApiToken(path);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == code);
  return std::string(r.status().message());
}

TEST_CASE("LoadApiToken: the token, one trailing newline dropped") {
  TempDir d;
  CHECK(*LoadApiToken(d.Write("a", "abc-DEF_123\n")) == "abc-DEF_123");
  CHECK(*LoadApiToken(d.Write("b", "abc\r\n")) == "abc");
  CHECK(*LoadApiToken(d.Write("c", "abc", 0400)) == "abc");
  CHECK(*LoadApiToken(d.Write("d", std::string(kMaxTokenBytes, 'x') + "\n")) ==
        std::string(kMaxTokenBytes, 'x'));
}

TEST_CASE("LoadApiToken refuses missing, empty, open, odd tokens") {
  TempDir d;
  CHECK(ErrorOf("", absl::StatusCode::kInvalidArgument) ==
        "api_token_file: not set");
  CHECK(ErrorOf(d.path + "/none", absl::StatusCode::kNotFound) ==
        "open api_token_file " + d.path + "/none: No such file or directory");
  std::string p = d.Write("empty", "");
  CHECK(ErrorOf(p, absl::StatusCode::kInvalidArgument) ==
        "api_token_file " + p + ": empty");
  p = d.Write("nl", "\n");
  CHECK(ErrorOf(p, absl::StatusCode::kInvalidArgument) ==
        "api_token_file " + p + ": empty");
  for (mode_t mode : {0640, 0604, 0660, 0644}) {
    p = d.Write("open", "abc", mode);
    CHECK(ErrorOf(p, absl::StatusCode::kPermissionDenied)
              .ends_with("lets group or others access it; run chmod 600 " + p));
  }
  for (const char* odd :
       {"a b", "a\tb", "two\nlines", "caf\xc3\xa9", "a\n\n"}) {
    CAPTURE(odd);
    p = d.Write("odd", odd);
    CHECK(ErrorOf(p, absl::StatusCode::kInvalidArgument) ==
          "api_token_file " + p +
              ": must be printable ASCII without spaces (one line)");
  }
  p = d.Write("big", std::string(kMaxTokenBytes + 1, 'x'));
  CHECK(ErrorOf(p, absl::StatusCode::kInvalidArgument) ==
        "api_token_file " + p + ": longer than 4096 bytes");
  CHECK(ErrorOf(d.path, absl::StatusCode::kInvalidArgument) ==
        "api_token_file " + d.path + ": not a regular file");
}

TEST_CASE("TokenEquals: equal only when identical") {
  CHECK(TokenEquals("secret", "secret"));
  CHECK_FALSE(TokenEquals("secreT", "secret"));
  CHECK_FALSE(TokenEquals("secret", "secrets"));
  CHECK_FALSE(TokenEquals("secrets", "secret"));
  CHECK_FALSE(TokenEquals("", "secret"));
  CHECK_FALSE(TokenEquals(std::string("secret\0", 7), "secret"));
  CHECK(TokenEquals("", ""));
}

}  // namespace
}  // namespace ssihv::control
