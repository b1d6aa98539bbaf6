#!/usr/bin/env bash
# Configures and builds one variant. Usage: scripts/build.sh [release|asan]
#   release  build/       gcc, RelWithDebInfo, benchmarks
#   asan     build-asan/  clang, -fsanitize=address,undefined, libFuzzer targets
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
variant=${1:-release}
case "$variant" in
  release)
    dir=$root/build
    args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)
    dir=$root/build-asan
    args=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang
          -DCMAKE_CXX_COMPILER=clang++ -DSSIHV_SANITIZE=ON -DSSIHV_FUZZ=ON
          -DSSIHV_BUILD_BENCH=OFF) ;;
  *) echo "build.sh: unknown variant '$variant' (release|asan)" >&2; exit 2 ;;
esac
cmake -S "$root" -B "$dir" -G Ninja "${args[@]}" >/dev/null
ninja -C "$dir"
