#!/usr/bin/env bash
# Configures and builds one variant.
# Usage: scripts/build.sh [release|asan|tsan] [--tests <label regex>]
#   release  build/       gcc, RelWithDebInfo (test code -g1), benchmarks
#   asan     build-asan/  clang, -fsanitize=address,undefined, libFuzzer targets
#   tsan     build-tsan/  clang, -fsanitize=thread, benchmarks (dsm_stress);
#            run under tests/tsan.sh (docs/PAGER.md, "Under ThreadSanitizer")
# --tests builds only what the tests with those CTest labels run
# (scripts/test_targets.sh), everything when one of them is a script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
variant=${1:-release}
labels=""
if [ $# -ge 2 ]; then
  [ "$2" = "--tests" ] && [ $# -eq 3 ] ||
    { echo "build.sh: usage: build.sh [release|asan|tsan] [--tests <label regex>]" >&2; exit 2; }
  labels=$3
fi
case "$variant" in
  release)
    dir=$root/build
    args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)
    dir=$root/build-asan
    args=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang
          -DCMAKE_CXX_COMPILER=clang++ -DSSIHV_SANITIZE=ON -DSSIHV_FUZZ=ON
          -DSSIHV_BUILD_BENCH=OFF) ;;
  tsan)
    dir=$root/build-tsan
    args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang
          -DCMAKE_CXX_COMPILER=clang++ -DSSIHV_TSAN=ON) ;;
  *) echo "build.sh: unknown variant '$variant' (release|asan|tsan)" >&2; exit 2 ;;
esac
cmake -S "$root" -B "$dir" -G Ninja "${args[@]}" >/dev/null
targets=()
# A script among the tests (exit 1) or none at all: build everything.
if [ -n "$labels" ] &&
   list=$("$root/scripts/test_targets.sh" "$dir" "$labels") && [ -n "$list" ]; then
  mapfile -t targets <<<"$list"
fi
ninja -C "$dir" "${targets[@]}"
