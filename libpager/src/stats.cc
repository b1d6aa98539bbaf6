#include "ssihv/pager/stats.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

namespace ssihv::pager {

std::string_view FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kLocalZero:
      return "local_zero";
    case FaultKind::kLocalCopy:
      return "local_copy";
    case FaultKind::kRemoteRead:
      return "remote_read";
    case FaultKind::kRemoteWrite:
      return "remote_write";
    case FaultKind::kUpgrade:
      return "upgrade";
  }
  return "unknown";
}

std::string_view FaultAccessName(FaultAccess access) {
  switch (access) {
    case FaultAccess::kRead:
      return "read";
    case FaultAccess::kWrite:
      return "write";
    case FaultAccess::kWriteProtect:
      return "write_protect";
  }
  return "unknown";
}

int LatencyHistogram::BucketOf(uint64_t ns) {
  if (ns < static_cast<uint64_t>(kSub)) return static_cast<int>(ns);
  const int msb = 63 - std::countl_zero(ns);
  const int shift = msb - kSubBits;
  const int sub = static_cast<int>((ns >> shift) & (kSub - 1));
  return (shift + 1) * kSub + sub;
}

uint64_t LatencyHistogram::BucketLow(int bucket) {
  if (bucket < kSub) return static_cast<uint64_t>(bucket);
  const int shift = bucket / kSub - 1;
  const uint64_t sub = static_cast<uint64_t>(bucket % kSub);
  return (static_cast<uint64_t>(kSub) + sub) << shift;
}

size_t LatencyHistogram::FixedBucketOf(uint64_t ns) {
  return static_cast<size_t>(std::lower_bound(kFaultBucketBoundsNs.begin(),
                                              kFaultBucketBoundsNs.end(), ns) -
                             kFaultBucketBoundsNs.begin());
}

FixedBuckets LatencyHistogram::Buckets() const {
  FixedBuckets b;
  uint64_t below = 0;
  for (size_t i = 0; i < fixed_.size(); ++i) {
    below += fixed_[i].load(std::memory_order_relaxed);
    if (i < b.le.size()) b.le[i] = below;
  }
  b.count = below;
  b.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  return b;
}

void LatencyHistogram::Record(int64_t ns) {
  const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
  buckets_[BucketOf(v)].fetch_add(1, std::memory_order_relaxed);
  fixed_[FixedBucketOf(v)].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(v, std::memory_order_relaxed);
  uint64_t max = max_ns_.load(std::memory_order_relaxed);
  while (v > max &&
         !max_ns_.compare_exchange_weak(max, v, std::memory_order_relaxed)) {
  }
}

void LatencyHistogram::Reset() {
  for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
  for (auto& b : fixed_) b.store(0, std::memory_order_relaxed);
  sum_ns_.store(0, std::memory_order_relaxed);
  max_ns_.store(0, std::memory_order_relaxed);
}

namespace {

// The midpoint of the bucket holding the q-quantile, capped at the maximum.
double Quantile(const std::vector<uint64_t>& buckets, uint64_t count, double q,
                uint64_t max_ns) {
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * count)));
  uint64_t seen = 0;
  for (size_t b = 0; b < buckets.size(); ++b) {
    seen += buckets[b];
    if (seen >= rank) {
      const int i = static_cast<int>(b);
      const uint64_t low = LatencyHistogram::BucketLow(i);
      const uint64_t high = i + 1 < LatencyHistogram::kBuckets
                                ? LatencyHistogram::BucketLow(i + 1)
                                : low;
      const double mid = (static_cast<double>(low) + high) / 2;
      return std::min(mid, static_cast<double>(max_ns)) / 1000.0;
    }
  }
  return static_cast<double>(max_ns) / 1000.0;
}

}  // namespace

LatencySummary LatencyHistogram::SummarizeMerged(const LatencyHistogram* hists,
                                                 size_t n) {
  std::vector<uint64_t> buckets(kBuckets);
  uint64_t count = 0;
  uint64_t sum_ns = 0;
  uint64_t max_ns = 0;
  for (size_t h = 0; h < n; ++h) {
    for (int b = 0; b < kBuckets; ++b) {
      const uint64_t c = hists[h].buckets_[b].load(std::memory_order_relaxed);
      buckets[b] += c;
      count += c;
    }
    sum_ns += hists[h].sum_ns_.load(std::memory_order_relaxed);
    max_ns = std::max(max_ns, hists[h].max_ns_.load(std::memory_order_relaxed));
  }
  LatencySummary s;
  s.count = count;
  if (count == 0) return s;
  s.mean_us = static_cast<double>(sum_ns) / static_cast<double>(count) / 1000.0;
  s.p50_us = Quantile(buckets, count, 0.50, max_ns);
  s.p90_us = Quantile(buckets, count, 0.90, max_ns);
  s.p99_us = Quantile(buckets, count, 0.99, max_ns);
  s.max_us = static_cast<double>(max_ns) / 1000.0;
  return s;
}

uint64_t PagerStats::total_faults() const {
  uint64_t n = 0;
  for (uint64_t f : faults) n += f;
  return n;
}

nlohmann::json ToJson(const LatencySummary& s) {
  return {{"count", s.count}, {"mean", s.mean_us}, {"p50", s.p50_us},
          {"p90", s.p90_us},  {"p99", s.p99_us},   {"max", s.max_us}};
}

nlohmann::json ToJson(const PagerStats& stats) {
  nlohmann::json faults = nlohmann::json::object();
  nlohmann::json latency = nlohmann::json::object();
  for (size_t k = 0; k < kNumFaultKinds; ++k) {
    const std::string name(FaultKindName(static_cast<FaultKind>(k)));
    faults[name] = stats.faults[k];
    latency[name] = ToJson(stats.latency[k]);
  }
  latency["all"] = ToJson(stats.all);
  return {{"faults", faults},
          {"total_faults", stats.total_faults()},
          {"latency_us", latency},
          {"messages", stats.messages},
          {"eexist_races", stats.eexist_races},
          {"eagain_retries", stats.eagain_retries},
          {"remove_events", stats.remove_events},
          {"removed_bytes", stats.removed_bytes},
          {"errors", stats.errors},
          {"filled_ahead", stats.filled_ahead},
          {"released", stats.released},
          {"features", stats.features}};
}

}  // namespace ssihv::pager
