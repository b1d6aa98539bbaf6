#include "ssihv/base/status_macros.h"

#include <catch2/catch.hpp>

namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  SSIHV_ASSIGN_OR_RETURN(int h, Half(x));
  SSIHV_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status Check(int x) {
  SSIHV_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

}  // namespace

TEST_CASE("SSIHV_ASSIGN_OR_RETURN propagates values and errors") {
  CHECK(*Quarter(8) == 2);
  CHECK(Quarter(6).status().message() == "odd");
  CHECK(Quarter(7).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("SSIHV_RETURN_IF_ERROR returns the first error") {
  CHECK(Check(4).ok());
  CHECK(Check(5).message() == "odd");
}
