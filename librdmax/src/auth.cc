#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "sys/posix.h"

namespace ssihv::rdmax {
namespace {

constexpr size_t kMinSecretBytes = 16;
constexpr size_t kMaxSecretBytes = 4096;

bool MacEqual(const uint8_t* a, const uint8_t* b) {
  return CRYPTO_memcmp(a, b, kMacSize) == 0;  // constant time
}

}  // namespace

absl::StatusOr<Nonce> RandomNonce() {
  Nonce n;
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
    return absl::InternalError("RAND_bytes failed (OpenSSL CSPRNG)");
  }
  return n;
}

Mac ComputeHandshakeMac(const std::string& secret, bool acceptor_role,
                        NodeId dialer, NodeId acceptor, WireBackend backend,
                        const Nonce& dialer_nonce,
                        const Nonce& acceptor_nonce) {
  static constexpr char kAcceptorLabel[] = "ssihv-rdmax-v1 acceptor";
  static constexpr char kDialerLabel[] = "ssihv-rdmax-v1 dialer  ";
  static_assert(sizeof(kAcceptorLabel) == sizeof(kDialerLabel));
  uint8_t msg[sizeof(kAcceptorLabel) + 4 + 4 + 2 + 2 * kNonceSize];
  uint8_t* p = msg;
  std::memcpy(p, acceptor_role ? kAcceptorLabel : kDialerLabel,
              sizeof(kAcceptorLabel));
  p += sizeof(kAcceptorLabel);
  PutU32(p, dialer);
  PutU32(p + 4, acceptor);
  PutU16(p + 8, static_cast<uint16_t>(backend));
  p += 10;
  std::memcpy(p, dialer_nonce.data(), kNonceSize);
  std::memcpy(p + kNonceSize, acceptor_nonce.data(), kNonceSize);
  Mac mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), msg,
       sizeof(msg), mac.data(), &len);
  return mac;
}

absl::StatusOr<std::vector<uint8_t>> DialerHandshake::Hello() {
  SSIHV_ASSIGN_OR_RETURN(nonce_, RandomNonce());
  HelloPayload hello;
  hello.backend = static_cast<uint16_t>(backend_);
  hello.node_id = self_;
  hello.target_id = target_;
  hello.nonce = nonce_;
  return EncodeHello(hello);
}

absl::StatusOr<std::vector<uint8_t>> DialerHandshake::OnChallenge(
    absl::Span<const uint8_t> payload) {
  SSIHV_ASSIGN_OR_RETURN(ChallengePayload c, DecodeChallenge(payload));
  if (c.node_id != target_) {
    return absl::PermissionDeniedError(absl::StrCat(
        "dialed node ", target_, " but node ", c.node_id, " answered"));
  }
  Mac expected = ComputeHandshakeMac(secret_, /*acceptor_role=*/true, self_,
                                     target_, backend_, nonce_, c.nonce);
  if (!MacEqual(expected.data(), c.mac.data())) {
    return absl::UnauthenticatedError(absl::StrCat(
        "node ", target_, " failed authentication (wrong cluster secret?)"));
  }
  Mac proof = ComputeHandshakeMac(secret_, /*acceptor_role=*/false, self_,
                                  target_, backend_, nonce_, c.nonce);
  return std::vector<uint8_t>(proof.begin(), proof.end());
}

absl::StatusOr<std::vector<uint8_t>> AcceptorHandshake::OnHello(
    absl::Span<const uint8_t> payload) {
  if (hello_seen_) return absl::InvalidArgumentError("second hello");
  hello_seen_ = true;
  SSIHV_ASSIGN_OR_RETURN(HelloPayload hello, DecodeHello(payload));
  const bool lane =
      backend_ == WireBackend::kTcp &&
      hello.backend == static_cast<uint16_t>(WireBackend::kTcpLane);
  if (hello.backend != static_cast<uint16_t>(backend_) && !lane) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", hello.node_id, " speaks backend ", hello.backend,
        ", this node ", static_cast<uint16_t>(backend_),
        " (1=tcp, 2=rdma, 3=tcp fetch lane): check the cluster config's "
        "transport"));
  }
  if (hello.node_id >= num_nodes_) {
    return absl::PermissionDeniedError(
        absl::StrCat("unknown node id ", hello.node_id, " (the cluster has ",
                     num_nodes_, " nodes)"));
  }
  if (lane && hello.node_id == self_) {
    return absl::PermissionDeniedError(absl::StrCat(
        "node id ", hello.node_id, " is this node's own (fetch lane)"));
  }
  if (!lane && hello.node_id <= self_) {
    return absl::PermissionDeniedError(
        absl::StrCat("node id ", hello.node_id, " must not dial node ", self_,
                     " (only higher ids dial lower ones)"));
  }
  if (hello.target_id != self_) {
    return absl::PermissionDeniedError(absl::StrCat(
        "node ", hello.node_id, " meant to dial node ", hello.target_id,
        ", reached node ", self_, " (config mismatch?)"));
  }
  dialer_backend_ = static_cast<WireBackend>(hello.backend);
  peer_ = hello.node_id;
  dialer_nonce_ = hello.nonce;
  SSIHV_ASSIGN_OR_RETURN(nonce_, RandomNonce());
  ChallengePayload c;
  c.node_id = self_;
  c.nonce = nonce_;
  c.mac = ComputeHandshakeMac(secret_, /*acceptor_role=*/true, peer_, self_,
                              dialer_backend_, dialer_nonce_, nonce_);
  return EncodeChallenge(c);
}

absl::Status AcceptorHandshake::OnProof(absl::Span<const uint8_t> payload) {
  if (!hello_seen_) return absl::InvalidArgumentError("proof before hello");
  if (payload.size() != kMacSize) {
    return absl::InvalidArgumentError("proof: size");
  }
  Mac expected =
      ComputeHandshakeMac(secret_, /*acceptor_role=*/false, peer_, self_,
                          dialer_backend_, dialer_nonce_, nonce_);
  if (!MacEqual(expected.data(), payload.data())) {
    return absl::UnauthenticatedError(absl::StrCat(
        "node ", peer_, " failed authentication (wrong cluster secret?)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSecret(const std::string& secret) {
  if (secret.size() < kMinSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster secret: ", secret.size(),
                     " bytes, need at least ", kMinSecretBytes));
  }
  if (secret.size() > kMaxSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster secret: longer than ", kMaxSecretBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadClusterSecret(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "secret_file: not set (every node needs the cluster secret)");
  }
  // +2: the one trailing newline (CRLF) that is not part of the secret.
  SSIHV_ASSIGN_OR_RETURN(
      std::string secret,
      base::ReadPrivateFile("secret_file", path, kMaxSecretBytes + 2));
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  absl::Status valid = ValidateSecret(secret);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret_file ", path, ": ", valid.message()));
  }
  return secret;
}

}  // namespace ssihv::rdmax
