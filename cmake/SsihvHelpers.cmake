# ssihv_add_library(NAME <name> SOURCES ... [DEPS ...])
#   Declares library ssihv_<name> with alias ssihv::<name>: static, or shared
#   with -DBUILD_SHARED_LIBS=ON. Public headers live in include/ssihv/<name>/;
#   ssihv_install_library(<name>) (cmake/SsihvInstall.cmake) installs it.
function(ssihv_add_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(ssihv_${ARG_NAME} ${ARG_SOURCES})
  add_library(ssihv::${ARG_NAME} ALIAS ssihv_${ARG_NAME})
  target_include_directories(ssihv_${ARG_NAME}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(ssihv_${ARG_NAME} PUBLIC ${ARG_DEPS}
                        PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# Test code (ssihv_add_test's binaries and everything under tests/) carries
# line tables and function names only (-g1) in the RelWithDebInfo build:
# enough for a failing test's backtrace, and its translation units compile
# in 60-75 % of the time they take with -g (the tests are more than half of
# the release build: 867 of 1587 CPU seconds on 2026-12-06). Product code
# keeps full -g for the debugger.
set(SSIHV_TEST_COMPILE_OPTIONS $<$<CONFIG:RelWithDebInfo>:-g1>)

# ssihv_add_test(NAME <name> SOURCES ... [DEPS ...] [LABELS ...]
#                [REQUIRES kvm|rdma|uffd] [TIMEOUT s] [ARGS ...])
#   One Catch2 binary registered as one CTest test (a process start costs
#   25-70 ms over 9p in the lab VM, so binaries hold many cases).
#   REQUIRES links the device-probing main: without the device the binary
#   prints "SKIP <dev>: <reason>" and exits 77 (SKIP_RETURN_CODE), unless
#   SSIHV_REQUIRE_<DEV>=1 makes that a failure.
function(ssihv_add_test)
  cmake_parse_arguments(ARG "" "NAME;REQUIRES;TIMEOUT"
                        "SOURCES;DEPS;LABELS;ARGS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_compile_options(${ARG_NAME} PRIVATE ${SSIHV_TEST_COMPILE_OPTIONS})
  if(ARG_REQUIRES)
    target_link_libraries(${ARG_NAME} PRIVATE ssihv_test_main_${ARG_REQUIRES})
  else()
    target_link_libraries(${ARG_NAME} PRIVATE ssihv_test_main)
  endif()
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME} ${ARG_ARGS})
  set(labels ${ARG_LABELS})
  if(NOT labels)
    set(labels unit)
  endif()
  if(ARG_REQUIRES AND NOT ARG_REQUIRES IN_LIST labels)
    list(APPEND labels ${ARG_REQUIRES})
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${labels}"
    SKIP_RETURN_CODE 77 TIMEOUT ${ARG_TIMEOUT})
endfunction()

# ssihv_add_fuzzer(NAME <name> SOURCES ... DEPS ... [CORPUS dir])
#   libFuzzer target, built only with -DSSIHV_FUZZ=ON and clang. CTest runs it
#   for a short, bounded number of runs (label fuzz).
function(ssihv_add_fuzzer)
  cmake_parse_arguments(ARG "" "NAME;CORPUS;RUNS" "SOURCES;DEPS" ${ARGN})
  if(NOT SSIHV_FUZZ)
    return()
  endif()
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_compile_options(${ARG_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_options(${ARG_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  if(NOT ARG_RUNS)
    set(ARG_RUNS 200000)
  endif()
  # libFuzzer writes new inputs into its first corpus directory: keep that in
  # the build tree and pass the committed seed corpus read-only after it.
  set(work_corpus ${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}_corpus)
  file(MAKE_DIRECTORY ${work_corpus})
  add_test(NAME ${ARG_NAME}
    COMMAND ${ARG_NAME} -runs=${ARG_RUNS} -max_total_time=60 ${work_corpus}
            ${ARG_CORPUS})
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS fuzz TIMEOUT 120)
endfunction()
