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
                       NodeId acceptor, uint32_t nodes = 4) {
  DialerHandshake d(dialer_secret, dialer, target, WireBackend::kTcp);
  AcceptorHandshake a(acceptor_secret, acceptor, nodes, WireBackend::kTcp);
  auto hello = d.Hello();
  if (!hello.ok()) return hello.status();
  auto challenge = a.OnHello(*hello);
  if (!challenge.ok()) return challenge.status();
  auto proof = d.OnChallenge(*challenge);
  if (!proof.ok()) return proof.status();
  absl::Status st = a.OnProof(*proof);
  if (st.ok() && a.peer() != dialer) return absl::InternalError("peer id");
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

TEST_CASE("the backend is bound into the proof") {
  // A proof computed for another backend, over the very same nonces and
  // ids, does not verify.
  DialerHandshake d(kSecret, 2, 0, WireBackend::kTcp);
  AcceptorHandshake a(kSecret, 0, 4, WireBackend::kTcp);
  auto hello = d.Hello();
  REQUIRE(hello.ok());
  auto challenge = a.OnHello(*hello);
  REQUIRE(challenge.ok());
  auto c = DecodeChallenge(*challenge);
  REQUIRE(c.ok());
  Nonce dialer_nonce;
  std::memcpy(dialer_nonce.data(), hello->data() + 16, kNonceSize);
  Mac rdma_proof = ComputeHandshakeMac(kSecret, false, 2, 0, WireBackend::kRdma,
                                       dialer_nonce, c->nonce);
  CHECK(absl::IsUnauthenticated(
      a.OnProof(std::vector<uint8_t>(rdma_proof.begin(), rdma_proof.end()))));
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
