// Basic vocabulary of the coherence protocol: page and node identifiers,
// node sets, access kinds and a node's local view of a page.
#ifndef SSIHV_DIRECTORY_TYPES_H_
#define SSIHV_DIRECTORY_TYPES_H_

#include <cstdint>

namespace ssihv::directory {

/// A guest page, numbered densely in the flat RAM space of the cluster:
/// page = ram_offset / 4096 (see PageSpace). Node ranges are consecutive.
using PageId = uint64_t;
/// A cluster node id, 0..num_nodes-1.
using NodeId = uint32_t;
/// A set of nodes, bit n = node n (the cluster has at most 64 nodes).
using NodeMask = uint64_t;

inline constexpr uint32_t kMaxNodes = 64;
/// "No node" in message fields and inspection results.
inline constexpr NodeId kNoNode = 0xFF;
inline constexpr uint64_t kPageSize = 4096;

inline constexpr NodeMask Bit(NodeId n) { return NodeMask{1} << n; }

/// The kind of access that faulted.
enum class Access : uint8_t { kRead, kWrite };

/// A node's local view of one page (the node agent's state).
enum class PageState : uint8_t {
  kInvalid = 0,   // no local copy: any access faults
  kShared = 1,    // read-only local copy
  kModified = 2,  // the only copy in the cluster, writable
  kLost = 3,      // no valid copy exists anywhere (a node died): fatal
};

}  // namespace ssihv::directory

#endif  // SSIHV_DIRECTORY_TYPES_H_
