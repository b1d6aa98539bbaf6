#include "auth.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace ssihv::rdmax {
namespace {

const std::string kSecret = "0123456789abcdef-cluster-secret";

// Runs the four-message handshake; returns the acceptor's verdict, or the
// first failing step's status.
absl::Status Handshake(const std::string& dialer_secret, NodeId dialer,
                       NodeId target, const std::string& acceptor_secret,
                       NodeId acceptor, uint32_t nodes = 4,
                       WireBackend dialer_backend = WireBackend::kTcp,
                       WireBackend acceptor_backend = WireBackend::kTcp,
                       bool* lane = nullptr) {
  DialerHandshake d(dialer_secret, dialer, target, dialer_backend);
  AcceptorHandshake a(acceptor_secret, acceptor, nodes, acceptor_backend);
  auto hello = d.Hello();
  if (!hello.ok()) return hello.status();
  auto challenge = a.OnHello(*hello);
  if (!challenge.ok()) return challenge.status();
  auto proof = d.OnChallenge(*challenge);
  if (!proof.ok()) return proof.status();
  absl::Status st = a.OnProof(*proof);
  if (st.ok() && a.peer() != dialer) return absl::InternalError("peer id");
  if (lane != nullptr) *lane = a.lane();
  return st;
}

TEST_CASE("handshake accepts matching secrets") {
  CHECK(Handshake(kSecret, 2, 0, kSecret, 0).ok());
  CHECK(Handshake(kSecret, 3, 1, kSecret, 1).ok());
}

TEST_CASE("handshake refuses a wrong secret on either side") {
  // The dialer notices first: the acceptor's MAC does not verify.
  absl::Status st = Handshake(kSecret + "x", 1, 0, kSecret, 0);
  CHECK(absl::IsUnauthenticated(st));
  // An acceptor with the wrong secret is refused just the same.
  st = Handshake(kSecret, 1, 0, kSecret + "x", 0);
  CHECK(absl::IsUnauthenticated(st));
}

TEST_CASE("handshake refuses unknown and misdirected node ids") {
  absl::Status st = Handshake(kSecret, 9, 0, kSecret, 0, /*nodes=*/4);
  CHECK(absl::IsPermissionDenied(st));
  CHECK(std::string(st.message()).find("unknown node id 9") !=
        std::string::npos);
  // Lower ids never dial higher ones; nor does a node dial itself.
  CHECK(absl::IsPermissionDenied(Handshake(kSecret, 0, 1, kSecret, 1)));
  CHECK(absl::IsPermissionDenied(Handshake(kSecret, 1, 1, kSecret, 1)));
  // Dialed node 1 but reached node 0 (address mix-up in the config).
  CHECK(absl::IsPermissionDenied(Handshake(kSecret, 2, 1, kSecret, 0)));
}

TEST_CASE("a recorded proof does not authenticate a new connection") {
  DialerHandshake d(kSecret, 1, 0, WireBackend::kTcp);
  AcceptorHandshake a1(kSecret, 0, 2, WireBackend::kTcp);
  auto hello = d.Hello();
  REQUIRE(hello.ok());
  auto c1 = a1.OnHello(*hello);
  REQUIRE(c1.ok());
  auto proof = d.OnChallenge(*c1);
  REQUIRE(proof.ok());
  REQUIRE(a1.OnProof(*proof).ok());
  // Replaying the same hello and proof to a fresh acceptor fails: its nonce
  // is new.
  AcceptorHandshake a2(kSecret, 0, 2, WireBackend::kTcp);
  REQUIRE(a2.OnHello(*hello).ok());
  CHECK(absl::IsUnauthenticated(a2.OnProof(*proof)));
  // The acceptor's own challenge MAC is not a valid proof (labels differ).
  AcceptorHandshake a3(kSecret, 0, 2, WireBackend::kTcp);
  auto c3 = a3.OnHello(*hello);
  REQUIRE(c3.ok());
  auto c3d = DecodeChallenge(*c3);
  REQUIRE(c3d.ok());
  CHECK(absl::IsUnauthenticated(a3.OnProof(c3d->mac)));
}

TEST_CASE("fetch lane handshakes: any other node may dial, same checks") {
  constexpr WireBackend kLane = WireBackend::kTcpLane;
  constexpr WireBackend kTcp = WireBackend::kTcp;
  bool lane = false;
  // A lane goes from the fetching node to the serving node, whichever id
  // is lower; the acceptor reports it as a lane.
  CHECK(Handshake(kSecret, 0, 2, kSecret, 2, 4, kLane, kTcp, &lane).ok());
  CHECK(lane);
  CHECK(Handshake(kSecret, 3, 1, kSecret, 1, 4, kLane, kTcp, &lane).ok());
  CHECK(lane);
  CHECK(Handshake(kSecret, 3, 1, kSecret, 1, 4, kTcp, kTcp, &lane).ok());
  CHECK(!lane);
  // Wrong secret, unknown id, own id, misdirected: refused as for a main
  // connection.
  CHECK(absl::IsUnauthenticated(
      Handshake(kSecret + "x", 0, 2, kSecret, 2, 4, kLane, kTcp)));
  CHECK(absl::IsUnauthenticated(
      Handshake(kSecret, 0, 2, kSecret + "x", 2, 4, kLane, kTcp)));
  CHECK(absl::IsPermissionDenied(
      Handshake(kSecret, 9, 2, kSecret, 2, 4, kLane, kTcp)));
  CHECK(absl::IsPermissionDenied(
      Handshake(kSecret, 2, 2, kSecret, 2, 4, kLane, kTcp)));
  CHECK(absl::IsPermissionDenied(
      Handshake(kSecret, 0, 1, kSecret, 2, 4, kLane, kTcp)));
  // Only a TCP node takes lanes.
  CHECK(absl::IsFailedPrecondition(
      Handshake(kSecret, 3, 1, kSecret, 1, 4, kLane, WireBackend::kRdma)));
}

TEST_CASE("a main connection's handshake does not open a lane") {
  // The backend is bound into both MACs: a dialer that computes its proof
  // for a main connection cannot pass it off in a lane handshake.
  DialerHandshake main_dialer(kSecret, 0, 2, WireBackend::kTcp);
  DialerHandshake lane_dialer(kSecret, 0, 2, WireBackend::kTcpLane);
  AcceptorHandshake a(kSecret, 2, 4, WireBackend::kTcp);
  auto hello = lane_dialer.Hello();
  REQUIRE(hello.ok());
  auto challenge = a.OnHello(*hello);
  REQUIRE(challenge.ok());
  REQUIRE(a.lane());
  // The main-connection dialer (other nonce, other backend) rejects the
  // lane's challenge, and a proof it made cannot match either.
  REQUIRE(main_dialer.Hello().ok());
  CHECK(absl::IsUnauthenticated(main_dialer.OnChallenge(*challenge).status()));
  auto c = DecodeChallenge(*challenge);
  REQUIRE(c.ok());
  Nonce lane_nonce;
  std::memcpy(lane_nonce.data(), hello->data() + 16, kNonceSize);
  Mac main_proof = ComputeHandshakeMac(kSecret, false, 0, 2, WireBackend::kTcp,
                                       lane_nonce, c->nonce);
  CHECK(absl::IsUnauthenticated(
      a.OnProof(std::vector<uint8_t>(main_proof.begin(), main_proof.end()))));
}

TEST_CASE("handshake refuses a backend mismatch") {
  DialerHandshake d(kSecret, 1, 0, WireBackend::kRdma);
  AcceptorHandshake a(kSecret, 0, 2, WireBackend::kTcp);
  auto hello = d.Hello();
  REQUIRE(hello.ok());
  CHECK(absl::IsFailedPrecondition(a.OnHello(*hello).status()));
}

std::string WriteSecretFile(const std::string& contents, mode_t mode) {
  char path[] = "/tmp/rdmax_secret_XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, contents.data(), contents.size()) ==
          static_cast<ssize_t>(contents.size()));
  ::close(fd);
  REQUIRE(::chmod(path, mode) == 0);
  return path;
}

TEST_CASE("LoadClusterSecret checks the file") {
  std::string ok = WriteSecretFile(kSecret + "\n", 0600);
  auto secret = LoadClusterSecret(ok);
  REQUIRE(secret.ok());
  CHECK(*secret == kSecret);  // trailing newline dropped

  std::string readable = WriteSecretFile(kSecret, 0644);
  auto st = LoadClusterSecret(readable).status();
  CHECK(absl::IsPermissionDenied(st));
  CHECK(std::string(st.message()).find("chmod 600") != std::string::npos);
  std::string group = WriteSecretFile(kSecret, 0640);
  CHECK(absl::IsPermissionDenied(LoadClusterSecret(group).status()));

  std::string short_secret = WriteSecretFile("tooshort", 0600);
  CHECK(absl::IsInvalidArgument(LoadClusterSecret(short_secret).status()));

  CHECK(absl::IsNotFound(LoadClusterSecret("/nonexistent/secret").status()));
  CHECK(absl::IsInvalidArgument(LoadClusterSecret("").status()));
  for (const std::string& p : {ok, readable, group, short_secret}) {
    std::remove(p.c_str());
  }
}

}  // namespace
}  // namespace ssihv::rdmax
