#include "ssihv/testing/cluster_files.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/base/unique_fd.h"

namespace ssihv::testing {

absl::StatusOr<uint16_t> FreeLoopbackPort() {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return base::LastErrnoStatus("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    return base::LastErrnoStatus("bind 127.0.0.1:0");
  }
  return ntohs(a.sin_port);
}

absl::StatusOr<std::string> WriteTcpClusterConfig(const std::string& dir,
                                                  int nodes, int memory_mib) {
  const std::string secret = dir + "/secret";
  SSIHV_RETURN_IF_ERROR(base::WriteFileAtomically(
      secret, absl::StrCat("ssihv-test-secret-", ::getpid(), "-0123456789")));
  if (::chmod(secret.c_str(), 0600) < 0) {
    return base::LastErrnoStatus("chmod " + secret);
  }
  std::string json = absl::StrCat(R"({"transport": "tcp", "secret_file": ")",
                                  secret, R"(", "nodes": [)");
  for (int i = 0; i < nodes; ++i) {
    SSIHV_ASSIGN_OR_RETURN(uint16_t port, FreeLoopbackPort());
    absl::StrAppend(&json, i ? "," : "", R"({"id": )", i,
                    R"(, "vcpus": 1, "memory_mib": )", memory_mib,
                    R"(, "address": "127.0.0.1:)", port, R"("})");
  }
  json += "]}";
  const std::string path = dir + "/cluster.json";
  SSIHV_RETURN_IF_ERROR(base::WriteFileAtomically(path, json));
  return path;
}

}  // namespace ssihv::testing
