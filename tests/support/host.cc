#include "ssihv/testing/host.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstdio>
#include <utility>
#include <vector>

#include "ssihv/base/unique_fd.h"

namespace ssihv::testing {

uint16_t FreeLoopbackPort() {
  std::vector<uint16_t> one = FreeLoopbackPorts(1);
  return one.empty() ? 0 : one[0];
}

std::vector<uint16_t> FreeLoopbackPorts(size_t n) {
  std::vector<base::UniqueFd> held;  // released together, at return
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < n; ++i) {
    base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (!fd ||
        ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return {};
    }
    ports.push_back(ntohs(a.sin_port));
    held.push_back(std::move(fd));
  }
  return ports;
}

CommandResult RunShell(const std::string& command) {
  CommandResult r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace ssihv::testing
