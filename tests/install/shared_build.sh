#!/usr/bin/env bash
# -DBUILD_SHARED_LIBS=ON, proven (scripts/test.sh runs it after the release
# tests): configures <dir>, builds only what `cmake --install` installs
# (libraries and front ends, not the tests: ~130 compile units), checks that
# every installed library is a shared object with the SONAME
# libssihv_<name>.so.<major.minor>, and runs install_test.sh on it: the
# examples built and run against the shared install.
# Build type None (no -O, no -g; the default of Debian's CMake packaging,
# which brings its own flags): what this checks is what is installed and
# that it links and runs; the release build checks the optimised code. It
# cost CI about 3.5 minutes instead of 5 with RelWithDebInfo (2 cores), and
# 1.5 since unity builds (88 s, docs/LAB.md "What CI's whole run costs").
# Usage: tests/install/shared_build.sh <build dir>
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$1
cmake -S "$root" -B "$dir" -G Ninja -DBUILD_SHARED_LIBS=ON \
  -DSSIHV_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=None >/dev/null
mapfile -t targets <"$dir/ssihv-install-targets.txt"
ninja -C "$dir" "${targets[@]}"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$dir/CMakeCache.txt")
"$root/tests/install/install_test.sh" "$dir" "$root" "$dir/install-test" \
  "$version"
prefix=$dir/install-test/prefix
soversion=${version%.*}
count=0
for lib in "$prefix"/lib*/libssihv_*.so."$version" \
           "$prefix"/lib/*/libssihv_*.so."$version"; do
  [ -e "$lib" ] || continue
  name=$(basename "$lib" ".$version")
  soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ "$soname" = "$name.$soversion" ] ||
    { echo "FAIL: $lib: SONAME '$soname', expected $name.$soversion" >&2; exit 1; }
  count=$((count + 1))
done
expected=$(grep -c '^ssihv_' "$dir/ssihv-install-targets.txt")
[ "$count" -eq "$expected" ] ||
  { echo "FAIL: $count shared libraries with a SONAME, expected $expected" >&2; exit 1; }
if ls "$prefix"/lib*/libssihv_*.a >/dev/null 2>&1; then
  echo "FAIL: static libraries in a shared install" >&2; exit 1
fi
echo "shared build: $count libraries, SONAME libssihv_<name>.so.$soversion"
