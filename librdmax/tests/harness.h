// Backend harnesses for the transport conformance suite: each makes a
// cluster config, creates transports for its backend and can play an
// impostor or a raw misbehaving peer.
#ifndef SSIHV_RDMAX_TESTS_HARNESS_H_
#define SSIHV_RDMAX_TESTS_HARNESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ssihv/base/log.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/cluster/config.h"
#include "ssihv/rdmax/loopback.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"
#include "ssihv/testing/log_capture.h"

namespace ssihv::rdmax::testing {

inline const std::string kTestSecret = "conformance-suite-cluster-secret";

/// A cluster config of `n` nodes; addresses on 127.0.0.1, on distinct ports
/// that were free a moment ago (ssihv::testing::FreeLoopbackPorts).
cluster::ClusterConfig MakeConfig(size_t n, const std::string& transport);

/// Captures base::Log lines while alive (tests/support).
using ::ssihv::testing::LogCapture;

/// A blocking client socket speaking raw frames (plays a misbehaving or
/// impostor peer; 5 s receive timeout).
class RawConnection {
 public:
  absl::Status Connect(const std::string& address);
  absl::Status Write(const void* p, size_t n);
  absl::Status WriteFrame(FrameKind kind, const std::vector<uint8_t>& payload,
                          uint64_t id = 0);
  /// Exactly n bytes; Aborted on end of file, DeadlineExceeded on timeout.
  absl::Status Read(void* p, size_t n);
  absl::StatusOr<std::pair<FrameHeader, std::vector<uint8_t>>> ReadFrame(
      WirePhase phase);
  /// Sends a fetch request with `id`; returns the frame that answers it.
  absl::StatusOr<std::pair<FrameHeader, std::vector<uint8_t>>> Fetch(
      uint32_t region, uint64_t offset, uint32_t length, uint64_t id);
  /// OK when the peer closes the connection (whatever it sends first).
  absl::Status WaitClosed();

 private:
  base::UniqueFd fd_;
};

class Harness {
 public:
  /// Whether blocking fetches use fetch lanes (docs/TRANSPORT.md), and
  /// whether those are TCP connections (raw lanes can be dialed).
  static constexpr bool kFetchLanes = false;
  static constexpr bool kTcpLanes = false;

  virtual ~Harness() = default;
  virtual absl::StatusOr<std::unique_ptr<Transport>> Make(
      NodeId id, TransportOptions options) = 0;
  /// Runs the handshake against `target` claiming `claimed` with `secret`
  /// from outside the cluster; OK if the target accepted.
  virtual absl::Status Impostor(NodeId target, NodeId claimed,
                                const std::string& secret) = 0;
  /// Authenticates as node `as` to `target`, then writes `bytes` as if they
  /// were frames. OK when the target then closed the connection (without
  /// sending anything but its region table). Unimplemented where there is
  /// no byte stream (loopback).
  virtual absl::Status SendRawAfterAuth(NodeId target, NodeId as,
                                        const std::vector<uint8_t>& bytes) = 0;
  /// Authenticates a TCP fetch lane to `target` as `as` with `secret`: the
  /// connection, once welcomed. Unimplemented without a byte stream.
  virtual absl::StatusOr<std::unique_ptr<RawConnection>> DialLane(
      NodeId target, NodeId as, const std::string& secret) = 0;
  const cluster::ClusterConfig& config() const { return config_; }

 protected:
  cluster::ClusterConfig config_;
};

class LoopbackHarness : public Harness {
 public:
  static constexpr const char* kName = "loopback";
  explicit LoopbackHarness(size_t nodes);
  absl::StatusOr<std::unique_ptr<Transport>> Make(
      NodeId id, TransportOptions options) override;
  absl::Status Impostor(NodeId target, NodeId claimed,
                        const std::string& secret) override;
  absl::Status SendRawAfterAuth(NodeId, NodeId,
                                const std::vector<uint8_t>&) override {
    return absl::UnimplementedError("loopback has no byte stream");
  }
  absl::StatusOr<std::unique_ptr<RawConnection>> DialLane(
      NodeId, NodeId, const std::string&) override {
    return absl::UnimplementedError("loopback has no byte stream");
  }

 private:
  std::shared_ptr<LoopbackFabric> fabric_;
};

/// TCP (and, with rdma=true, the RDMA backend's TCP control connection).
class SocketHarness : public Harness {
 public:
  SocketHarness(size_t nodes, bool rdma);
  absl::StatusOr<std::unique_ptr<Transport>> Make(
      NodeId id, TransportOptions options) override;
  absl::Status Impostor(NodeId target, NodeId claimed,
                        const std::string& secret) override;
  absl::Status SendRawAfterAuth(NodeId target, NodeId as,
                                const std::vector<uint8_t>& bytes) override;
  absl::StatusOr<std::unique_ptr<RawConnection>> DialLane(
      NodeId target, NodeId as, const std::string& secret) override;

 private:
  bool rdma_;
};

class TcpHarness : public SocketHarness {
 public:
  static constexpr const char* kName = "tcp";
  static constexpr bool kFetchLanes = true;
  static constexpr bool kTcpLanes = true;
  explicit TcpHarness(size_t nodes) : SocketHarness(nodes, false) {}
};

/// TCP with tcp_rearm_delay (interrupt coalescing) and no fetch lanes:
/// every fetch on the main connection, which must behave the same.
class TcpCoalescingHarness : public SocketHarness {
 public:
  static constexpr const char* kName = "tcp-coalescing-nolanes";
  explicit TcpCoalescingHarness(size_t nodes) : SocketHarness(nodes, false) {}
  absl::StatusOr<std::unique_ptr<Transport>> Make(
      NodeId id, TransportOptions options) override {
    options.tcp_rearm_delay = absl::Microseconds(500);
    options.fetch_lanes = 0;
    return SocketHarness::Make(id, std::move(options));
  }
};

/// RDMA, default options: event mode, fetches over lanes.
class RdmaHarness : public SocketHarness {
 public:
  static constexpr const char* kName = "rdma";
  static constexpr bool kFetchLanes = true;
  explicit RdmaHarness(size_t nodes) : SocketHarness(nodes, true) {}
};

/// RDMA without fetch lanes: every fetch on the peer's main QP, completed
/// through the data thread (event mode).
class RdmaNoLanesHarness : public SocketHarness {
 public:
  static constexpr const char* kName = "rdma-nolanes";
  explicit RdmaNoLanesHarness(size_t nodes) : SocketHarness(nodes, true) {}
  absl::StatusOr<std::unique_ptr<Transport>> Make(
      NodeId id, TransportOptions options) override {
    options.fetch_lanes = 0;
    return SocketHarness::Make(id, std::move(options));
  }
};

/// RDMA with TransportOptions::busy_poll: blocked fetches poll their
/// lane's CQ (or the shared send CQ).
class RdmaBusyPollHarness : public SocketHarness {
 public:
  static constexpr const char* kName = "rdma-busy-poll";
  static constexpr bool kFetchLanes = true;
  explicit RdmaBusyPollHarness(size_t nodes) : SocketHarness(nodes, true) {}
  absl::StatusOr<std::unique_ptr<Transport>> Make(
      NodeId id, TransportOptions options) override {
    options.busy_poll = true;
    return SocketHarness::Make(id, std::move(options));
  }
};

}  // namespace ssihv::rdmax::testing

#endif  // SSIHV_RDMAX_TESTS_HARNESS_H_
