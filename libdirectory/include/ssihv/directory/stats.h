// Protocol counters: global (atomic, updated from concurrent per-page calls)
// and per page (at the home, optional).
#ifndef SSIHV_DIRECTORY_STATS_H_
#define SSIHV_DIRECTORY_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "ssihv/directory/message.h"

namespace ssihv::directory {

/// A relaxed atomic counter that copies by value (agents are copyable so the
/// simulator can snapshot them).
class Counter {
 public:
  Counter() = default;
  Counter(const Counter& other) : v_(other.get()) {}
  Counter& operator=(const Counter& other) {
    v_.store(other.get(), std::memory_order_relaxed);
    return *this;
  }
  void Add(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

/// A plain copy of the counters of one Node.
struct StatsSnapshot {
  // Faults seen by the node agent, by kind.
  uint64_t faults_local = 0;       // resolved from the local copy
  uint64_t faults_read_miss = 0;   // Invalid, read: kReadReq
  uint64_t faults_write_miss = 0;  // Invalid, write: kWriteReq
  uint64_t faults_upgrade = 0;     // Shared, write: kWriteReq upgrade
  uint64_t faults_joined = 0;      // a request was already in flight
  uint64_t faults_lost = 0;        // the page is lost
  // Transactions run by the home agent.
  uint64_t read_txns = 0;
  uint64_t write_txns = 0;           // including upgrades
  uint64_t invalidations = 0;        // kInv sent
  uint64_t ownership_transfers = 0;  // kTransfer sent
  uint64_t pull_grants = 0;          // kPullGrant sent
  uint64_t requests_queued = 0;      // arrived while the page was busy
  uint64_t pages_lost = 0;           // declared lost by this home
  // Run grants (read-ahead): kReadRun sent and the pages they asked for
  // (node agent); kDataRun sent and the pages they granted (home agent;
  // each granted page is also one of read_txns).
  uint64_t run_requests = 0;
  uint64_t run_pages_requested = 0;
  uint64_t run_grants = 0;
  uint64_t run_pages_granted = 0;
  // Write runs (kReadRun|kFlagWrite, first touches of remote memory): sent
  // and the pages asked for (node agent); pages granted Modified and
  // refused (home agent; each granted page is also one of write_txns).
  uint64_t write_run_requests = 0;
  uint64_t write_run_pages_requested = 0;
  uint64_t write_run_pages_granted = 0;
  uint64_t write_run_pages_refused = 0;
  // Messages by type (index = MsgType), network only.
  std::array<uint64_t, kNumMsgTypes> sent{};
  std::array<uint64_t, kNumMsgTypes> received{};
  uint64_t local_messages = 0;  // node agent <-> home agent on this node
  uint64_t dropped_from_dead = 0;
  uint64_t page_bytes_sent = 0;  // page bytes of kData and kDataRun

  uint64_t messages_sent() const;
  /// One JSON object, keys as the field names, messages by type name.
  std::string ToJson() const;
};

/// Per-page counters kept by the page's home (when enabled).
struct PageStats {
  uint32_t reads = 0;          // read transactions
  uint32_t writes = 0;         // write transactions (misses and upgrades)
  uint32_t invalidations = 0;  // kInv sent
  uint32_t transfers = 0;      // kTransfer sent
};

/// The live counters of one Node.
struct Stats {
  Counter faults_local, faults_read_miss, faults_write_miss, faults_upgrade,
      faults_joined, faults_lost;
  Counter read_txns, write_txns, invalidations, ownership_transfers,
      pull_grants, requests_queued, pages_lost;
  Counter run_requests, run_pages_requested, run_grants, run_pages_granted;
  Counter write_run_requests, write_run_pages_requested,
      write_run_pages_granted, write_run_pages_refused;
  std::array<Counter, kNumMsgTypes> sent, received;
  Counter local_messages, dropped_from_dead, page_bytes_sent;

  StatsSnapshot Snapshot() const;
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_STATS_H_
