#include "ssihv/control/vm_node.h"

namespace ssihv::control {

absl::string_view NodeStatusName(NodeStatus status) {
  switch (status) {
    case NodeStatus::kStarting:
      return "starting";
    case NodeStatus::kWaitingForPeers:
      return "waiting-for-peers";
    case NodeStatus::kRunning:
      return "running";
    case NodeStatus::kPaused:
      return "paused";
    case NodeStatus::kStopping:
      return "stopping";
    case NodeStatus::kFailed:
      return "failed";
  }
  return "unknown";
}

absl::string_view PeerLivenessName(PeerLiveness liveness) {
  switch (liveness) {
    case PeerLiveness::kWaiting:
      return "waiting";
    case PeerLiveness::kAlive:
      return "alive";
    case PeerLiveness::kLost:
      return "lost";
  }
  return "unknown";
}

absl::string_view VcpuStateName(VcpuState state) {
  switch (state) {
    case VcpuState::kRunning:
      return "running";
    case VcpuState::kHalted:
      return "halted";
    case VcpuState::kWaitingForSipi:
      return "waiting-for-sipi";
    case VcpuState::kPaused:
      return "paused";
    case VcpuState::kStopped:
      return "stopped";
  }
  return "unknown";
}

absl::string_view VmActionName(VmAction action) {
  switch (action) {
    case VmAction::kPause:
      return "pause";
    case VmAction::kResume:
      return "resume";
    case VmAction::kStop:
      return "stop";
  }
  return "unknown";
}

}  // namespace ssihv::control
