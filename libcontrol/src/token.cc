// The API's bearer token: read from api_token_file with the same file rules
// as the cluster secret, compared in constant time.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/control/api.h"

namespace ssihv::control {

absl::StatusOr<std::string> LoadApiToken(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("api_token_file: not set");
  }
  // +2: the one trailing newline (CRLF) that is not part of the token.
  SSIHV_ASSIGN_OR_RETURN(
      std::string token,
      base::ReadPrivateFile("api_token_file", path, kMaxTokenBytes + 2));
  if (!token.empty() && token.back() == '\n') token.pop_back();
  if (!token.empty() && token.back() == '\r') token.pop_back();
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("api_token_file ", path, ": ", why));
  };
  if (token.empty()) return bad("empty");
  if (token.size() > kMaxTokenBytes) {
    return bad(absl::StrCat("longer than ", kMaxTokenBytes, " bytes"));
  }
  // It travels as "Authorization: Bearer <token>": one header token.
  if (!std::all_of(token.begin(), token.end(),
                   [](char c) { return c > ' ' && c < 0x7f; })) {
    return bad("must be printable ASCII without spaces (one line)");
  }
  return token;
}

bool TokenEquals(absl::string_view given, absl::string_view expected) {
  // Every byte of `expected` is visited whatever `given` holds, so the time
  // says nothing about where the first difference is.
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g =
        i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

}  // namespace ssihv::control
