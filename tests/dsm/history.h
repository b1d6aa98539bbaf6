// A linearizability checker for read/write registers whose writes store
// unique values (the DSM stress's history mode: every write stores a value
// no other write stores, so each read names the write it returns).
//
// A history is linearizable when each operation can be given a point inside
// its [start, end] interval so that, in the order of those points, every
// read returns the value of the latest write before it (or the initial
// value when there is none). Linearizability is local: a history is
// linearizable iff each register's sub-history is, so registers are checked
// one by one.
//
// With unique values the check is polynomial (Gibbons and Korach, "Testing
// shared memories", SIAM J. Comput. 1997; the zone formulation of Golab, Li
// and Shah, PODC 2011). A value's *cluster* is its write and the reads that
// return it; in a linearization the cluster occupies one contiguous block.
// Its *zone* runs from f = the earliest end of an operation of the cluster
// to s = the latest start. If f < s the zone is *forward*: the block must
// cover [f, s] in time. Otherwise it is *backward*: the whole cluster can sit
// at one point of [s, f]. The history is linearizable iff
//   1. every read returns the initial value or a value some write stored,
//      and does not end before that write starts;
//   2. no two forward zones overlap;
//   3. no backward zone lies strictly inside a forward zone.
// (2) catches a later read returning an older value than an earlier one,
// (3) a read returning a value overwritten by a write that completed before
// the read started (a stale read). Touching intervals are compatible: an
// operation that ends at t and one that starts at t are concurrent.
//
// A write that never returned (its node was killed) has end = kPending: it
// may have taken effect at any point after its start, or never; one no read
// returned is ignored. Reads that never returned must be left out.
#ifndef SSIHV_TESTS_DSM_HISTORY_H_
#define SSIHV_TESTS_DSM_HISTORY_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ssihv::dsm_stress {

struct RegisterOp {
  static constexpr int64_t kPending = std::numeric_limits<int64_t>::max();
  enum Kind : uint8_t { kRead, kWrite };

  Kind kind = kRead;
  uint32_t reg = 0;
  uint64_t value = 0;    ///< stored (write) or returned (read)
  int64_t start_ns = 0;  ///< CLOCK_MONOTONIC before the access
  int64_t end_ns = 0;    ///< after it, or kPending (writes only)
  uint32_t process = 0;  ///< who ran it (for messages: node * 256 + thread)
};

struct HistoryCheck {
  uint64_t registers = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t pending_writes = 0;
  /// One line per violation found (at most `max_violations`), naming the
  /// register, values, operations and times. Empty: linearizable.
  std::vector<std::string> violations;
  uint64_t violation_count = 0;  ///< all of them, beyond the lines kept

  bool linearizable() const { return violation_count == 0; }
};

/// Checks `ops` (any order; several registers) against registers that all
/// start holding `initial`. O(n log n).
HistoryCheck CheckLinearizable(std::vector<RegisterOp> ops,
                               uint64_t initial = 0,
                               size_t max_violations = 20);

/// Exhaustive search for a linearization of one register's history (Wing and
/// Gong): exponential, for cross-checking CheckLinearizable in tests on
/// histories of a few operations. Pending writes may be left out.
bool LinearizableBySearch(const std::vector<RegisterOp>& ops,
                          uint64_t initial = 0);

/// "read 0x... by 1.0 [start, end]" (times relative to `origin_ns`).
std::string DescribeOp(const RegisterOp& op, int64_t origin_ns = 0);

}  // namespace ssihv::dsm_stress

#endif  // SSIHV_TESTS_DSM_HISTORY_H_
