#include "ssihv/pager/stats.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <thread>
#include <vector>

namespace ssihv::pager {
namespace {

TEST_CASE("Every value falls in a bucket no wider than 1/32 of its low edge") {
  std::vector<uint64_t> values = {0,
                                  1,
                                  31,
                                  32,
                                  33,
                                  63,
                                  64,
                                  65,
                                  1000,
                                  4095,
                                  4096,
                                  123456789,
                                  uint64_t{1} << 40,
                                  ~uint64_t{0}};
  for (uint64_t v : values) {
    const int b = LatencyHistogram::BucketOf(v);
    REQUIRE(b >= 0);
    REQUIRE(b < LatencyHistogram::kBuckets);
    const uint64_t low = LatencyHistogram::BucketLow(b);
    CHECK(low <= v);
    if (b + 1 < LatencyHistogram::kBuckets) {
      const uint64_t high = LatencyHistogram::BucketLow(b + 1);
      CHECK(v < high);
      if (v >= 32) CHECK(static_cast<double>(high - low) / low <= 1.0 / 32);
    }
  }
}

TEST_CASE("Buckets are monotone and contiguous") {
  for (int b = 1; b < LatencyHistogram::kBuckets; ++b) {
    REQUIRE(LatencyHistogram::BucketLow(b) >
            LatencyHistogram::BucketLow(b - 1));
    REQUIRE(LatencyHistogram::BucketOf(LatencyHistogram::BucketLow(b)) == b);
    REQUIRE(LatencyHistogram::BucketOf(LatencyHistogram::BucketLow(b) - 1) ==
            b - 1);
  }
}

TEST_CASE("Percentiles of a uniform distribution are within 3%") {
  LatencyHistogram h;
  for (int us = 1; us <= 1000; ++us) h.Record(int64_t{us} * 1000);
  LatencySummary s = h.Summarize();
  CHECK(s.count == 1000);
  CHECK(s.mean_us == Approx(500.5));
  CHECK(s.max_us == 1000.0);
  CHECK(s.p50_us == Approx(500).epsilon(0.032));
  CHECK(s.p90_us == Approx(900).epsilon(0.032));
  CHECK(s.p99_us == Approx(990).epsilon(0.032));
  CHECK(s.p99_us <= s.max_us);
}

TEST_CASE("A single value is reported as itself, capped by the exact max") {
  LatencyHistogram h;
  h.Record(5000);
  LatencySummary s = h.Summarize();
  CHECK(s.count == 1);
  CHECK(s.max_us == 5.0);
  CHECK(s.p50_us <= 5.0);
  CHECK(s.p50_us == Approx(5.0).epsilon(0.032));
}

TEST_CASE("Empty histogram and Reset give zeros; negatives count as 0") {
  LatencyHistogram h;
  CHECK(h.Summarize().count == 0);
  CHECK(h.Summarize().p99_us == 0);
  h.Record(-5);
  CHECK(h.Summarize().count == 1);
  CHECK(h.Summarize().max_us == 0);
  h.Reset();
  CHECK(h.Summarize().count == 0);
}

TEST_CASE("Concurrent records are all counted") {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 20000; ++i) h.Record(100 + t * 1000 + i % 7);
    });
  }
  for (auto& t : threads) t.join();
  LatencySummary s = h.Summarize();
  CHECK(s.count == 80000);
  CHECK(s.max_us == Approx(3.106));
}

TEST_CASE("Merged summary covers every histogram") {
  std::array<LatencyHistogram, 2> hs;
  hs[0].Record(1000);
  hs[1].Record(3000);
  hs[1].Record(3000);
  LatencySummary s = LatencyHistogram::SummarizeMerged(hs.data(), 2);
  CHECK(s.count == 3);
  CHECK(s.max_us == 3.0);
  CHECK(s.mean_us == Approx(7.0 / 3));
}

TEST_CASE("Stats JSON has a fixed schema with every kind") {
  PagerStats st;
  st.faults[static_cast<size_t>(FaultKind::kUpgrade)] = 3;
  st.latency[static_cast<size_t>(FaultKind::kUpgrade)].count = 3;
  st.latency[static_cast<size_t>(FaultKind::kUpgrade)].p99_us = 7.5;
  st.eexist_races = 2;
  nlohmann::json j = ToJson(st);
  for (const char* kind :
       {"local_zero", "local_copy", "remote_read", "remote_write", "upgrade"}) {
    CHECK(j["faults"].contains(kind));
    CHECK(j["latency_us"][kind].contains("p50"));
    CHECK(j["latency_us"][kind].contains("p90"));
    CHECK(j["latency_us"][kind].contains("p99"));
    CHECK(j["latency_us"][kind].contains("max"));
  }
  CHECK(j["faults"]["upgrade"] == 3);
  CHECK(j["total_faults"] == 3);
  CHECK(j["latency_us"]["upgrade"]["p99"] == 7.5);
  CHECK(j["eexist_races"] == 2);
  CHECK(j["latency_us"].contains("all"));
}

TEST_CASE("Fixed buckets count exactly at their bounds, cumulatively") {
  LatencyHistogram h;
  // On a bound counts in that bucket (le = less or equal); one above, in
  // the next; beyond 1 s only in count.
  h.Record(1'000);
  h.Record(1'001);
  h.Record(2'000);
  h.Record(999'999'999);
  h.Record(2'000'000'000);
  h.Record(-5);  // a clock step backwards counts as 0
  const FixedBuckets b = h.Buckets();
  CHECK(b.le[0] == 2);  // -5 (as 0) and 1000 <= 1 us
  CHECK(b.le[1] == 4);  // + 1001, 2000 <= 2 us
  CHECK(b.le[2] == 4);
  CHECK(b.le[17] == 4);
  CHECK(b.le[18] == 5);  // + 999'999'999 <= 1 s
  CHECK(b.count == 6);
  CHECK(b.sum_ns ==
        uint64_t{1'000} + 1'001 + 2'000 + 999'999'999 + 2'000'000'000);
  for (size_t i = 1; i < b.le.size(); ++i) CHECK(b.le[i] >= b.le[i - 1]);
  CHECK(LatencyHistogram::FixedBucketOf(0) == 0);
  CHECK(LatencyHistogram::FixedBucketOf(50'001) == 6);
  CHECK(LatencyHistogram::FixedBucketOf(1'000'000'001) ==
        kFaultBucketBoundsNs.size());
  h.Reset();
  CHECK(h.Buckets().count == 0);
  CHECK(h.Buckets().le[18] == 0);
}

TEST_CASE("Kind and access names") {
  CHECK(FaultKindName(FaultKind::kLocalZero) == "local_zero");
  CHECK(FaultKindName(FaultKind::kRemoteWrite) == "remote_write");
  CHECK(FaultAccessName(FaultAccess::kWriteProtect) == "write_protect");
}

}  // namespace
}  // namespace ssihv::pager
