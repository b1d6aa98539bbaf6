#include "history.h"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace ssihv::dsm_stress {
namespace {

constexpr int64_t kMinusInf = std::numeric_limits<int64_t>::min();

/// One value's cluster: its write and the reads returning it, reduced to
/// the zone's two ends and the operations that set them.
struct Zone {
  uint64_t value = 0;
  int64_t f = 0;                     // earliest end
  int64_t s = 0;                     // latest start
  const RegisterOp* f_op = nullptr;  // nullptr: the initial "write"
  const RegisterOp* s_op = nullptr;
  const RegisterOp* write = nullptr;  // nullptr: the initial value
  bool forward() const { return f < s; }
};

class RegisterChecker {
 public:
  RegisterChecker(uint64_t initial, int64_t origin, HistoryCheck* out,
                  size_t max_violations)
      : initial_(initial),
        origin_(origin),
        out_(out),
        max_violations_(max_violations) {}

  void Check(uint32_t reg, const std::vector<const RegisterOp*>& ops);

 private:
  void Violation(std::string line) {
    ++out_->violation_count;
    if (out_->violations.size() < max_violations_) {
      out_->violations.push_back(std::move(line));
    }
  }
  std::string Op(const RegisterOp* op) const {
    return op == nullptr ? "the initial value" : DescribeOp(*op, origin_);
  }
  /// Builds the zones; reports reads that name no usable write.
  void BuildZones(uint32_t reg, const std::vector<const RegisterOp*>& ops);
  void CheckForwardOverlaps(uint32_t reg);
  void CheckContainment(uint32_t reg);

  const uint64_t initial_;
  const int64_t origin_;
  HistoryCheck* const out_;
  const size_t max_violations_;
  std::vector<Zone> forward_;  // sorted by f
  std::vector<Zone> backward_;
};

void Extend(Zone& z, const RegisterOp* op) {
  if (op->end_ns < z.f) {
    z.f = op->end_ns;
    z.f_op = op;
  }
  if (op->start_ns > z.s) {
    z.s = op->start_ns;
    z.s_op = op;
  }
}

void RegisterChecker::BuildZones(uint32_t reg,
                                 const std::vector<const RegisterOp*>& ops) {
  std::unordered_map<uint64_t, size_t> index;  // value -> zone
  std::vector<Zone> zones;
  std::vector<bool> read(1, false);  // zone 0: the initial value
  zones.push_back({.value = initial_, .f = kMinusInf, .s = kMinusInf});
  for (const RegisterOp* op : ops) {
    if (op->kind != RegisterOp::kWrite) continue;
    ++out_->writes;
    if (op->end_ns == RegisterOp::kPending) ++out_->pending_writes;
    if (op->value == initial_ || index.count(op->value) != 0) {
      Violation(absl::StrCat("register ", reg, ": value 0x",
                             absl::Hex(op->value), " stored twice (", Op(op),
                             "): values must be unique"));
      continue;
    }
    index[op->value] = zones.size();
    zones.push_back({.value = op->value,
                     .f = op->end_ns,
                     .s = op->start_ns,
                     .f_op = op,
                     .s_op = op,
                     .write = op});
    read.push_back(false);
  }
  for (const RegisterOp* op : ops) {
    if (op->kind != RegisterOp::kRead) continue;
    ++out_->reads;
    size_t z = 0;
    if (op->value != initial_) {
      auto it = index.find(op->value);
      if (it == index.end()) {
        Violation(absl::StrCat("register ", reg, ": ", Op(op),
                               " returns a value no write stored"));
        continue;
      }
      z = it->second;
      const RegisterOp* w = zones[z].write;
      if (op->end_ns < w->start_ns) {
        Violation(absl::StrCat("register ", reg, ": ", Op(op),
                               " returns the value of ", Op(w),
                               ", which started after the read ended"));
      }
    }
    read[z] = true;
    Extend(zones[z], op);
  }
  for (size_t z = 0; z < zones.size(); ++z) {
    // Unread: the initial value constrains nothing, nor does a write that
    // never returned (it may never have happened).
    if (!read[z] && (z == 0 || zones[z].f == RegisterOp::kPending)) continue;
    (zones[z].forward() ? forward_ : backward_).push_back(zones[z]);
  }
  std::sort(forward_.begin(), forward_.end(),
            [](const Zone& a, const Zone& b) { return a.f < b.f; });
}

// Sorted by f, a forward zone overlaps an earlier one iff it begins before
// the largest s seen so far.
void RegisterChecker::CheckForwardOverlaps(uint32_t reg) {
  const Zone* widest = nullptr;
  for (const Zone& z : forward_) {
    if (widest != nullptr && z.f < widest->s) {
      Violation(absl::StrCat(
          "register ", reg, ": values 0x", absl::Hex(widest->value), " and 0x",
          absl::Hex(z.value), " cannot be ordered: ", Op(widest->f_op),
          " ended before ", Op(widest->s_op), " started, and ", Op(z.f_op),
          " ended before ", Op(z.s_op),
          " started; the two spans overlap (an older value returned after a "
          "newer one)"));
    }
    if (widest == nullptr || z.s > widest->s) widest = &z;
  }
}

// A backward zone strictly inside a forward one: the whole cluster of X
// happened after one operation of V ended and before another started, yet
// V's block cannot be split around X.
void RegisterChecker::CheckContainment(uint32_t reg) {
  // reach[i]: among forward_[0..i], the zone whose s is largest.
  std::vector<const Zone*> reach(forward_.size());
  for (size_t i = 0; i < forward_.size(); ++i) {
    reach[i] = (i > 0 && reach[i - 1]->s >= forward_[i].s) ? reach[i - 1]
                                                           : &forward_[i];
  }
  for (const Zone& b : backward_) {
    // Of the forward zones beginning before b, the one reaching furthest
    // is the only candidate that matters.
    const size_t n =
        std::lower_bound(forward_.begin(), forward_.end(), b.s,
                         [](const Zone& z, int64_t s) { return z.f < s; }) -
        forward_.begin();
    if (n == 0) continue;
    const Zone* best = reach[n - 1];
    if (!(b.f < best->s)) continue;
    Violation(absl::StrCat(
        "register ", reg, ": stale value 0x", absl::Hex(best->value), ": ",
        Op(best->s_op), " returns it although 0x", absl::Hex(b.value),
        " overwrote it in between (", Op(b.s_op), "; every operation of 0x",
        absl::Hex(b.value), " lies after ", Op(best->f_op), " and before ",
        Op(best->s_op), ")"));
  }
}

void RegisterChecker::Check(uint32_t reg,
                            const std::vector<const RegisterOp*>& ops) {
  forward_.clear();
  backward_.clear();
  BuildZones(reg, ops);
  CheckForwardOverlaps(reg);
  CheckContainment(reg);
}

}  // namespace

std::string DescribeOp(const RegisterOp& op, int64_t origin_ns) {
  auto us = [&](int64_t t) {
    if (t == RegisterOp::kPending) return std::string("pending");
    return absl::StrCat(static_cast<double>(t - origin_ns) / 1000.0);
  };
  return absl::StrCat(op.kind == RegisterOp::kRead ? "read" : "write", " 0x",
                      absl::Hex(op.value), " by ", op.process / 256, ".",
                      op.process % 256, " [", us(op.start_ns), ", ",
                      us(op.end_ns), "] us");
}

HistoryCheck CheckLinearizable(std::vector<RegisterOp> ops, uint64_t initial,
                               size_t max_violations) {
  HistoryCheck out;
  std::sort(ops.begin(), ops.end(),
            [](const RegisterOp& a, const RegisterOp& b) {
              return a.reg != b.reg ? a.reg < b.reg : a.start_ns < b.start_ns;
            });
  int64_t origin = std::numeric_limits<int64_t>::max();
  for (const RegisterOp& op : ops) origin = std::min(origin, op.start_ns);
  RegisterChecker checker(initial, origin, &out, max_violations);
  std::vector<const RegisterOp*> one;
  for (size_t i = 0; i < ops.size();) {
    one.clear();
    size_t j = i;
    for (; j < ops.size() && ops[j].reg == ops[i].reg; ++j) {
      one.push_back(&ops[j]);
    }
    ++out.registers;
    checker.Check(ops[i].reg, one);
    i = j;
  }
  return out;
}

// ---- exhaustive search (tests) ----------------------------------------------

namespace {

bool Search(const std::vector<RegisterOp>& ops, std::vector<bool>& done,
            size_t left, uint64_t current) {
  if (left == 0) return true;
  // Only pending writes left: they may never have taken effect.
  bool only_pending = true;
  for (size_t i = 0; i < ops.size() && only_pending; ++i) {
    only_pending = done[i] || ops[i].end_ns == RegisterOp::kPending;
  }
  if (only_pending) return true;
  // The next point can go to any operation that started before every
  // remaining operation ended (none of them precedes it).
  int64_t min_end = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!done[i]) min_end = std::min(min_end, ops[i].end_ns);
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    if (done[i] || ops[i].start_ns > min_end) continue;
    const bool write = ops[i].kind == RegisterOp::kWrite;
    if (!write && ops[i].value != current) continue;
    done[i] = true;
    if (Search(ops, done, left - 1, write ? ops[i].value : current)) {
      return true;
    }
    done[i] = false;
  }
  return false;
}

}  // namespace

bool LinearizableBySearch(const std::vector<RegisterOp>& ops,
                          uint64_t initial) {
  std::vector<bool> done(ops.size(), false);
  return Search(ops, done, ops.size(), initial);
}

}  // namespace ssihv::dsm_stress
