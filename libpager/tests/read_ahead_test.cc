// The remote read-ahead policy of the DSM node (src/dsm/read_ahead.h).
#include "dsm/read_ahead.h"

#include <catch2/catch.hpp>
#include <utility>

namespace ssihv::pager::dsm {
namespace {

using Range = std::pair<uint64_t, uint64_t>;

TEST_CASE("ReadAhead: a sequential walk requests growing windows ahead") {
  ReadAhead ra(32);
  CHECK(ra.OnRemoteRead(100, 1000) == Range{0, 0});  // first fault: no trend
  CHECK(ra.OnRemoteRead(101, 1000) == Range{102, 106});  // window 4
  // The walk faults on a page still in flight: the window doubles and the
  // request continues where the last one ended.
  CHECK(ra.OnRemoteRead(102, 1000) == Range{106, 111});  // 102 + 1 + 8
  // The pages arrived; the next fault is at the end of what was requested.
  CHECK(ra.OnRemoteRead(111, 1000) == Range{112, 128});  // window 16
  CHECK(ra.OnRemoteRead(128, 1000) == Range{129, 161});  // window 32
  CHECK(ra.OnRemoteRead(161, 1000) == Range{162, 194});  // bounded at 32
  CHECK(ra.window() == 32);
}

TEST_CASE("ReadAhead: a jump resets the window, the range end bounds it") {
  ReadAhead ra(32);
  ra.OnRemoteRead(10, 1000);
  CHECK(ra.OnRemoteRead(11, 1000) == Range{12, 16});
  CHECK(ra.OnRemoteRead(500, 1000) == Range{0, 0});  // random access
  CHECK(ra.window() == 0);
  CHECK(ra.OnRemoteRead(9, 1000) == Range{0, 0});   // backwards
  CHECK(ra.OnRemoteRead(10, 12) == Range{11, 12});  // only up to the end
  CHECK(ra.OnRemoteRead(11, 12) == Range{0, 0});    // nothing left
}

TEST_CASE("ReadAhead: bound 0 is off") {
  ReadAhead ra(0);
  for (uint64_t p = 0; p < 10; ++p)
    CHECK(ra.OnRemoteRead(p, 100) == Range{0, 0});
}

}  // namespace
}  // namespace ssihv::pager::dsm
