#include "ssihv/acpi/slit.h"

#include <cassert>

namespace ssihv::acpi {

Bytes BuildSlit(const cluster::ClusterConfig& config, const OemInfo& oem) {
  const size_t n = config.num_nodes();
  ByteBuilder b;
  size_t start = BeginSdt(b, "SLIT", kSlitRevision, oem);
  b.U64(n);  // Number of System Localities
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      assert(config.distances[i][j] <= 0xff);
      b.U8(static_cast<uint8_t>(config.distances[i][j]));  // Entry[i][j]
    }
  }
  FinishSdt(b, start);
  return std::move(b).Take();
}

}  // namespace ssihv::acpi
