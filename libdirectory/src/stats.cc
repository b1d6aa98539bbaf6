#include "ssihv/directory/stats.h"

#include "absl/strings/str_cat.h"

namespace ssihv::directory {

uint64_t StatsSnapshot::messages_sent() const {
  uint64_t n = 0;
  for (uint64_t v : sent) n += v;
  return n;
}

std::string StatsSnapshot::ToJson() const {
  std::string s = "{";
  auto field = [&s](absl::string_view name, uint64_t v) {
    absl::StrAppend(&s, s.size() > 1 ? ", " : "", "\"", name, "\": ", v);
  };
  field("faults_local", faults_local);
  field("faults_read_miss", faults_read_miss);
  field("faults_write_miss", faults_write_miss);
  field("faults_upgrade", faults_upgrade);
  field("faults_joined", faults_joined);
  field("faults_lost", faults_lost);
  field("read_txns", read_txns);
  field("write_txns", write_txns);
  field("invalidations", invalidations);
  field("ownership_transfers", ownership_transfers);
  field("pull_grants", pull_grants);
  field("requests_queued", requests_queued);
  field("pages_lost", pages_lost);
  field("run_requests", run_requests);
  field("run_pages_requested", run_pages_requested);
  field("run_grants", run_grants);
  field("run_pages_granted", run_pages_granted);
  field("write_run_requests", write_run_requests);
  field("write_run_pages_requested", write_run_pages_requested);
  field("write_run_pages_granted", write_run_pages_granted);
  field("write_run_pages_refused", write_run_pages_refused);
  field("local_messages", local_messages);
  field("dropped_from_dead", dropped_from_dead);
  field("page_bytes_sent", page_bytes_sent);
  for (const auto* table : {&sent, &received}) {
    absl::StrAppend(&s, ", \"", table == &sent ? "sent" : "received", "\": {");
    bool first = true;
    for (int t = 1; t < kNumMsgTypes; ++t) {
      absl::StrAppend(&s, first ? "" : ", ", "\"",
                      MsgTypeName(static_cast<MsgType>(t)),
                      "\": ", (*table)[t]);
      first = false;
    }
    s += "}";
  }
  s += "}";
  return s;
}

StatsSnapshot Stats::Snapshot() const {
  StatsSnapshot s;
  s.faults_local = faults_local.get();
  s.faults_read_miss = faults_read_miss.get();
  s.faults_write_miss = faults_write_miss.get();
  s.faults_upgrade = faults_upgrade.get();
  s.faults_joined = faults_joined.get();
  s.faults_lost = faults_lost.get();
  s.read_txns = read_txns.get();
  s.write_txns = write_txns.get();
  s.invalidations = invalidations.get();
  s.ownership_transfers = ownership_transfers.get();
  s.pull_grants = pull_grants.get();
  s.requests_queued = requests_queued.get();
  s.pages_lost = pages_lost.get();
  s.run_requests = run_requests.get();
  s.run_pages_requested = run_pages_requested.get();
  s.run_grants = run_grants.get();
  s.run_pages_granted = run_pages_granted.get();
  s.write_run_requests = write_run_requests.get();
  s.write_run_pages_requested = write_run_pages_requested.get();
  s.write_run_pages_granted = write_run_pages_granted.get();
  s.write_run_pages_refused = write_run_pages_refused.get();
  for (int t = 0; t < kNumMsgTypes; ++t) {
    s.sent[t] = sent[t].get();
    s.received[t] = received[t].get();
  }
  s.local_messages = local_messages.get();
  s.dropped_from_dead = dropped_from_dead.get();
  s.page_bytes_sent = page_bytes_sent.get();
  return s;
}

}  // namespace ssihv::directory
