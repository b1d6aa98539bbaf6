// The conformance suite against the backends that run everywhere: the
// in-process loopback and TCP over 127.0.0.1.
#include "harness.h"

#define SSIHV_CONFORMANCE_HARNESSES                                          \
  ssihv::rdmax::testing::LoopbackHarness, ssihv::rdmax::testing::TcpHarness, \
      ssihv::rdmax::testing::TcpCoalescingHarness
#include "conformance_suite.inc"
