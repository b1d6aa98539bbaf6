// Mutual challenge-response authentication of a connection between two
// nodes, over the cluster secret (HMAC-SHA256, OpenSSL libcrypto).
//
//   dialer   -> acceptor  kHello     {dialer id, acceptor id, backend, Nd}
//   acceptor -> dialer    kChallenge {acceptor id, Na, MAC(K, "acceptor"|..)}
//   dialer   -> acceptor  kProof     {MAC(K, "dialer"|..)}
//   acceptor -> dialer    kWelcome
//
// Both MACs cover the role label, both node ids, the backend and both
// nonces, so neither can be replayed (fresh nonces), reflected (different
// labels) or moved to another pair of nodes. The acceptor drops a hello
// from a node id outside the cluster (or one that should not dial it)
// before it computes anything; nothing else is exchanged before kWelcome.
// These classes are pure state machines over payload bytes: the TCP, RDMA
// and loopback backends and the tests' impostor clients drive them.
//
// A TCP fetch lane (docs/TRANSPORT.md, "Fetch lanes") runs the very same
// handshake with backend kTcpLane, which both MACs cover: a lane's
// handshake cannot be replayed or passed off as a main connection's, and
// vice versa. Unlike a main connection, a lane may be dialed by any other
// node of the cluster (the node that fetches dials the node it fetches
// from).
#ifndef SSIHV_RDMAX_AUTH_H_
#define SSIHV_RDMAX_AUTH_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ssihv/rdmax/transport.h"
#include "ssihv/rdmax/wire.h"

namespace ssihv::rdmax {

using Mac = std::array<uint8_t, kMacSize>;
using Nonce = std::array<uint8_t, kNonceSize>;

/// What a connection is for; bound into the handshake MACs.
enum class WireBackend : uint16_t { kTcp = 1, kRdma = 2, kTcpLane = 3 };

/// Fresh random bytes from OpenSSL's CSPRNG.
absl::StatusOr<Nonce> RandomNonce();

/// The MAC one side sends: HMAC-SHA256(secret, label | dialer | acceptor |
/// backend | dialer nonce | acceptor nonce).
Mac ComputeHandshakeMac(const std::string& secret, bool acceptor_role,
                        NodeId dialer, NodeId acceptor, WireBackend backend,
                        const Nonce& dialer_nonce, const Nonce& acceptor_nonce);

class DialerHandshake {
 public:
  DialerHandshake(const std::string& secret, NodeId self, NodeId target,
                  WireBackend backend)
      : secret_(secret), self_(self), target_(target), backend_(backend) {}
  /// The kHello payload.
  absl::StatusOr<std::vector<uint8_t>> Hello();
  /// Verifies the acceptor's challenge; returns the kProof payload.
  /// Unauthenticated when the acceptor's MAC is wrong.
  absl::StatusOr<std::vector<uint8_t>> OnChallenge(
      absl::Span<const uint8_t> payload);

 private:
  std::string secret_;
  NodeId self_;
  NodeId target_;
  WireBackend backend_;
  Nonce nonce_{};
};

class AcceptorHandshake {
 public:
  /// `num_nodes`: ids 0..num_nodes-1 exist. Only nodes with an id above
  /// `self` dial it (the lower id always accepts). An acceptor of kTcp also
  /// accepts kTcpLane hellos, from any other node of the cluster.
  AcceptorHandshake(const std::string& secret, NodeId self, uint32_t num_nodes,
                    WireBackend backend)
      : secret_(secret),
        self_(self),
        num_nodes_(num_nodes),
        backend_(backend) {}
  /// Checks the claimed identity; returns the kChallenge payload.
  /// PermissionDenied for an unknown or unexpected node id.
  absl::StatusOr<std::vector<uint8_t>> OnHello(
      absl::Span<const uint8_t> payload);
  /// Verifies the dialer's proof. Unauthenticated when wrong.
  absl::Status OnProof(absl::Span<const uint8_t> payload);
  /// The authenticated peer (valid after OnProof succeeded).
  NodeId peer() const { return peer_; }
  /// True when the dialer asked for a TCP fetch lane (valid after OnHello).
  bool lane() const { return dialer_backend_ == WireBackend::kTcpLane; }

 private:
  std::string secret_;
  NodeId self_;
  uint32_t num_nodes_;
  WireBackend backend_;
  NodeId peer_ = 0;
  WireBackend dialer_backend_ = WireBackend::kTcp;
  bool hello_seen_ = false;
  Nonce dialer_nonce_{};
  Nonce nonce_{};
};

/// Checks a secret's length (the file checks are in LoadClusterSecret).
absl::Status ValidateSecret(const std::string& secret);

}  // namespace ssihv::rdmax

#endif  // SSIHV_RDMAX_AUTH_H_
