// The Catch2 session, run by the test mains (test_main.cc, the Linux boot
// tests' main): its implementation is compiled once, in catch_main.cc, the
// slowest translation unit of the suite.
#ifndef SSIHV_TESTING_RUN_CATCH_H_
#define SSIHV_TESTING_RUN_CATCH_H_

namespace ssihv::testing {

int RunCatch(int argc, char** argv);

}  // namespace ssihv::testing

#endif  // SSIHV_TESTING_RUN_CATCH_H_
