// Pager statistics: fault counts by kind and service-time histograms,
// as a plain struct and as JSON.
#ifndef SSIHV_PAGER_STATS_H_
#define SSIHV_PAGER_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "ssihv/pager/fault.h"

namespace ssihv::pager {

/// Percentiles of one latency distribution, in microseconds.
struct LatencySummary {
  uint64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double max_us = 0;  ///< exact; percentiles are within 1/32 (~3%) of truth
};

/// Upper bounds (ns) of the fixed fault-latency buckets, 1-2-5 steps from
/// 1 us (a local zero fill) to 1 s (a stalled peer): what Prometheus shows
/// (libcontrol's kLatencyBucketBounds, in seconds; ssihv-vmm checks at
/// compile time that the two agree). Exact counts, unlike percentiles of
/// the log-linear buckets.
inline constexpr std::array<uint64_t, 19> kFaultBucketBoundsNs = {
    1'000,       2'000,       5'000,       10'000,       20'000,
    50'000,      100'000,     200'000,     500'000,      1'000'000,
    2'000'000,   5'000'000,   10'000'000,  20'000'000,   50'000'000,
    100'000'000, 200'000'000, 500'000'000, 1'000'000'000};

/// Cumulative counts over kFaultBucketBoundsNs, as Prometheus exposes a
/// histogram: `le[i]` = observations <= bound i (non-decreasing), `count`
/// all of them (the +Inf bucket), `sum_ns` their sum.
struct FixedBuckets {
  std::array<uint64_t, kFaultBucketBoundsNs.size()> le{};
  uint64_t count = 0;
  uint64_t sum_ns = 0;
};

/// A concurrent log-linear histogram of nanosecond durations: 32 linear
/// sub-buckets per power of two, so any percentile is reported within ~3%.
/// Record() is wait-free (relaxed atomics); Summarize() may run concurrently
/// and sees a slightly torn but monotone view.
class LatencyHistogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits) * kSub + kSub;

  void Record(int64_t ns);
  LatencySummary Summarize() const { return SummarizeMerged(this, 1); }
  /// The same observations in the fixed buckets (exact, any time).
  FixedBuckets Buckets() const;
  void Reset();

  /// The fixed bucket of `ns`: the first bound >= ns, or the bound count
  /// (beyond the last bound).
  static size_t FixedBucketOf(uint64_t ns);

  /// One summary of the union of `n` histograms.
  static LatencySummary SummarizeMerged(const LatencyHistogram* hists,
                                        size_t n);

  /// Bucket index of `ns` and the smallest value of a bucket (for tests).
  static int BucketOf(uint64_t ns);
  static uint64_t BucketLow(int bucket);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  // Recorded next to buckets_: one more relaxed add per fault, for exact
  // counts at the bounds a scraper asks about.
  std::array<std::atomic<uint64_t>, kFaultBucketBoundsNs.size() + 1> fixed_{};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

/// A snapshot of a pager's counters (Pager::Stats()).
struct PagerStats {
  /// Resolved faults by FaultKind, and their service times (from reading
  /// the fault off the uffd to the resolving ioctl).
  std::array<uint64_t, kNumFaultKinds> faults{};
  std::array<LatencySummary, kNumFaultKinds> latency{};
  /// The same service times in the fixed buckets, by FaultKind.
  std::array<FixedBuckets, kNumFaultKinds> buckets{};
  LatencySummary all;  ///< every kind together

  uint64_t messages = 0;        ///< page-fault messages read from the uffd
  uint64_t eexist_races = 0;    ///< resolutions that found the page mapped
  uint64_t eagain_retries = 0;  ///< resolutions retried: mapping changing
  uint64_t remove_events = 0;   ///< REMOVE events (MADV_DONTNEED/REMOVE)
  uint64_t removed_bytes = 0;   ///< bytes covered by those events
  uint64_t errors = 0;          ///< faults a source could not resolve
  uint64_t filled_ahead = 0;    ///< pages mapped ahead of faults (fault-around)
  uint64_t released = 0;        ///< failed pages released (ReleaseFailedFaults)
  uint64_t features = 0;        ///< negotiated UFFD_FEATURE_* bits

  uint64_t total_faults() const;
};

/// {"faults": {"local_zero": n, ...}, "latency_us": {"local_zero": {"count",
///  "mean", "p50", "p90", "p99", "max"}, ..., "all": {...}}, "messages",
///  "eexist_races", "eagain_retries", "remove_events", "removed_bytes",
///  "errors", "filled_ahead", "released", "features"}. Kinds with no faults are
///  included with zeros, so consumers see a fixed schema.
nlohmann::json ToJson(const PagerStats& stats);
nlohmann::json ToJson(const LatencySummary& summary);

}  // namespace ssihv::pager

#endif  // SSIHV_PAGER_STATS_H_
