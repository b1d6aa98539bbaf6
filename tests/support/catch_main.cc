// The Catch2 implementation, compiled once for every test binary (it is the
// slowest translation unit in the suite).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

namespace ssihv::testing {

int RunCatch(int argc, char** argv) { return Catch::Session().run(argc, argv); }

}  // namespace ssihv::testing
