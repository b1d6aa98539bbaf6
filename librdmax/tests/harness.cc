#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "auth.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/unique_fd.h"
#include "ssihv/rdmax/wire.h"
#include "ssihv/testing/host.h"

namespace ssihv::rdmax::testing {
namespace {

using base::UniqueFd;

// Dials `target` as `claimed`; sends a proof made with `secret` whatever
// the challenge says. OK when the target welcomed us.
absl::Status RawHandshake(RawConnection& c,
                          const cluster::ClusterConfig& config, NodeId target,
                          NodeId claimed, const std::string& secret,
                          WireBackend backend) {
  SSIHV_RETURN_IF_ERROR(c.Connect(config.nodes[target].address));
  DialerHandshake d(secret, claimed, target, backend);
  SSIHV_ASSIGN_OR_RETURN(std::vector<uint8_t> hello, d.Hello());
  SSIHV_RETURN_IF_ERROR(c.WriteFrame(FrameKind::kHello, hello));
  auto challenge = c.ReadFrame(WirePhase::kDialerHandshake);
  if (!challenge.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "target dropped the hello: ", challenge.status().message()));
  }
  SSIHV_ASSIGN_OR_RETURN(ChallengePayload ch,
                         DecodeChallenge(challenge->second));
  Nonce dialer_nonce;
  std::memcpy(dialer_nonce.data(), hello.data() + 16, kNonceSize);
  Mac proof = ComputeHandshakeMac(secret, false, claimed, target, backend,
                                  dialer_nonce, ch.nonce);
  SSIHV_RETURN_IF_ERROR(c.WriteFrame(
      FrameKind::kProof, std::vector<uint8_t>(proof.begin(), proof.end())));
  auto welcome = c.ReadFrame(WirePhase::kDialerHandshake);
  if (!welcome.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("target dropped the proof: ", welcome.status().message()));
  }
  if (welcome->first.kind != FrameKind::kWelcome) {
    return absl::InternalError("expected welcome");
  }
  return absl::OkStatus();
}

}  // namespace

cluster::ClusterConfig MakeConfig(size_t n, const std::string& transport) {
  std::string json = "{\"transport\": \"" + transport + "\", \"nodes\": [";
  // Distinct ports: two nodes on one address make the config invalid.
  const std::vector<uint16_t> ports = ssihv::testing::FreeLoopbackPorts(n);
  for (size_t i = 0; i < n; ++i) {
    json += absl::StrCat(i ? "," : "", "{\"id\": ", i,
                         ", \"vcpus\": 1, \"memory_mib\": 2, \"address\": "
                         "\"127.0.0.1:",
                         ports.empty() ? 0 : ports[i], "\"}");
  }
  json += "]}";
  absl::StatusOr<cluster::ClusterConfig> c = cluster::ParseClusterConfig(json);
  if (!c.ok()) {
    std::fprintf(stderr, "MakeConfig: %s\n", c.status().ToString().c_str());
    std::abort();
  }
  return *c;
}

LoopbackHarness::LoopbackHarness(size_t nodes) {
  config_ = MakeConfig(nodes, "tcp");
  fabric_ = LoopbackFabric::Create(config_);
}

absl::StatusOr<std::unique_ptr<Transport>> LoopbackHarness::Make(
    NodeId id, TransportOptions options) {
  return fabric_->CreateTransport(id, std::move(options));
}

absl::Status LoopbackHarness::Impostor(NodeId target, NodeId claimed,
                                       const std::string& secret) {
  return fabric_->TryAuthenticateAs(target, claimed, secret);
}

SocketHarness::SocketHarness(size_t nodes, bool rdma) : rdma_(rdma) {
  config_ = MakeConfig(nodes, rdma ? "rdma" : "tcp");
}

absl::StatusOr<std::unique_ptr<Transport>> SocketHarness::Make(
    NodeId id, TransportOptions options) {
  return rdma_ ? CreateRdmaTransport(config_, id, std::move(options))
               : CreateTcpTransport(config_, id, std::move(options));
}

absl::Status SocketHarness::Impostor(NodeId target, NodeId claimed,
                                     const std::string& secret) {
  RawConnection c;
  return RawHandshake(c, config_, target, claimed, secret,
                      rdma_ ? WireBackend::kRdma : WireBackend::kTcp);
}

absl::Status SocketHarness::SendRawAfterAuth(
    NodeId target, NodeId as, const std::vector<uint8_t>& bytes) {
  RawConnection c;
  SSIHV_RETURN_IF_ERROR(
      RawHandshake(c, config_, target, as, kTestSecret,
                   rdma_ ? WireBackend::kRdma : WireBackend::kTcp));
  SSIHV_RETURN_IF_ERROR(c.Write(bytes.data(), bytes.size()));
  // The target may send its own setup frames (region table) first; then it
  // must close.
  return c.WaitClosed();
}

absl::StatusOr<std::unique_ptr<RawConnection>> SocketHarness::DialLane(
    NodeId target, NodeId as, const std::string& secret) {
  auto c = std::make_unique<RawConnection>();
  SSIHV_RETURN_IF_ERROR(
      RawHandshake(*c, config_, target, as, secret, WireBackend::kTcpLane));
  return c;
}

absl::Status RawConnection::Connect(const std::string& address) {
  std::string host;
  uint16_t port;
  SSIHV_RETURN_IF_ERROR(
      cluster::SplitAddress("address", address, &host, &port));
  fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  timeval tv{5, 0};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return absl::UnavailableError(absl::StrCat("connect ", address));
  }
  return absl::OkStatus();
}

absl::Status RawConnection::Write(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::send(fd_.get(), c, n, MSG_NOSIGNAL);
    if (w <= 0) return absl::UnavailableError("send: connection closed");
    c += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status RawConnection::WriteFrame(FrameKind kind,
                                       const std::vector<uint8_t>& payload,
                                       uint64_t id) {
  FrameHeader h;
  h.kind = kind;
  h.id = id;
  h.length = static_cast<uint32_t>(payload.size());
  uint8_t hdr[kFrameHeaderSize];
  EncodeFrameHeader(h, hdr);
  SSIHV_RETURN_IF_ERROR(Write(hdr, sizeof(hdr)));
  return Write(payload.data(), payload.size());
}

absl::Status RawConnection::Read(void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::recv(fd_.get(), c, n, 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) {
      return absl::AbortedError("connection closed by the peer");
    }
    if (r < 0) return absl::DeadlineExceededError("recv timed out");
    c += r;
    n -= static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<FrameHeader, std::vector<uint8_t>>>
RawConnection::ReadFrame(WirePhase phase) {
  uint8_t hdr[kFrameHeaderSize];
  SSIHV_RETURN_IF_ERROR(Read(hdr, sizeof(hdr)));
  SSIHV_ASSIGN_OR_RETURN(FrameHeader h,
                         DecodeFrameHeader(hdr, phase, FrameLimits{}));
  std::vector<uint8_t> payload(h.length);
  SSIHV_RETURN_IF_ERROR(Read(payload.data(), payload.size()));
  return std::make_pair(h, std::move(payload));
}

absl::StatusOr<std::pair<FrameHeader, std::vector<uint8_t>>>
RawConnection::Fetch(uint32_t region, uint64_t offset, uint32_t length,
                     uint64_t id) {
  std::vector<uint8_t> request(kFetchRequestSize);
  EncodeFetchRequest({region, length, offset}, request.data());
  SSIHV_RETURN_IF_ERROR(WriteFrame(FrameKind::kFetchRequest, request, id));
  return ReadFrame(WirePhase::kEstablished);
}

absl::Status RawConnection::WaitClosed() {
  // Each read waits at most the socket's 5 s timeout.
  for (;;) {
    uint8_t buf[256];
    absl::Status st = Read(buf, 1);
    if (absl::IsAborted(st)) return absl::OkStatus();
    if (!st.ok()) return absl::DeadlineExceededError("target kept it open");
  }
}

}  // namespace ssihv::rdmax::testing
