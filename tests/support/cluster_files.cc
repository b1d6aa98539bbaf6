#include "ssihv/testing/cluster_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "ssihv/base/errno_status.h"
#include "ssihv/base/file_util.h"
#include "ssihv/base/status_macros.h"
#include "ssihv/testing/host.h"

namespace ssihv::testing {

absl::StatusOr<std::string> WriteClusterConfig(const std::string& dir,
                                               int nodes, int memory_mib,
                                               const std::string& transport) {
  const std::string secret = dir + "/secret";
  SSIHV_RETURN_IF_ERROR(base::WriteFileAtomically(
      secret, absl::StrCat("ssihv-test-secret-", ::getpid(), "-0123456789")));
  if (::chmod(secret.c_str(), 0600) < 0) {
    return base::LastErrnoStatus("chmod " + secret);
  }
  std::string json =
      absl::StrCat(R"({"transport": ")", transport, R"(", "secret_file": ")",
                   secret, R"(", "nodes": [)");
  const std::vector<uint16_t> ports = FreeLoopbackPorts(nodes);
  if (ports.empty())
    return absl::UnavailableError("no free ports on 127.0.0.1");
  for (int i = 0; i < nodes; ++i) {
    absl::StrAppend(&json, i ? "," : "", R"({"id": )", i,
                    R"(, "vcpus": 1, "memory_mib": )", memory_mib,
                    R"(, "address": "127.0.0.1:)", ports[i], R"("})");
  }
  json += "]}";
  const std::string path = dir + "/cluster.json";
  SSIHV_RETURN_IF_ERROR(base::WriteFileAtomically(path, json));
  return path;
}

}  // namespace ssihv::testing
