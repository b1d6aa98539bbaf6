// The conformance suite against the RDMA backend. Needs a verbs device with
// an ACTIVE port (exits 77 with the reason otherwise); runs for real in the
// lab VM over SoftRoCE (rxe0) with SSIHV_REQUIRE_RDMA=1.
#include "harness.h"

#define SSIHV_CONFORMANCE_HARNESSES               \
  ssihv::rdmax::testing::RdmaHarness,             \
      ssihv::rdmax::testing::RdmaBusyPollHarness, \
      ssihv::rdmax::testing::RdmaNoLanesHarness
#include "conformance_suite.inc"
