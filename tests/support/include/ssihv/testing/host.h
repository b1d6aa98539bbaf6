// Small host helpers for tests that start servers or other programs.
#ifndef SSIHV_TESTING_HOST_H_
#define SSIHV_TESTING_HOST_H_

#include <cstdint>
#include <string>
#include <vector>

namespace ssihv::testing {

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0,
/// then released); 0 if none could be had. Another process may take it in
/// between: for tests that must write a port into a config before the
/// listener exists.
uint16_t FreeLoopbackPort();
/// `n` distinct such ports (empty if they could not be had): all are bound
/// before any is released. Calling FreeLoopbackPort() n times may hand out
/// the same port twice (the kernel may reuse a port released a moment
/// before), and a cluster config with two nodes on one address is invalid.
std::vector<uint16_t> FreeLoopbackPorts(size_t n);

/// What a shell command printed (stdout and stderr) and its exit status
/// (-1 when it did not exit normally).
struct CommandResult {
  int exit = -1;
  std::string output;
};
/// Runs `command` with /bin/sh, stderr merged into stdout.
CommandResult RunShell(const std::string& command);

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_HOST_H_
