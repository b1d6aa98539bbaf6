#!/usr/bin/env bash
# The installed package, as a user of it sees it (issue 14):
#   1. cmake --install into a fresh temporary prefix;
#   2. exactly the public headers are installed (libX/include/ of each
#      library: nothing from src/ or tests/), they compile with only the
#      prefix on the include path, and <ssihv/pager.h> is clean C89, C99
#      and C++; bindgen turns it into Rust bindings;
#   3. one pkg-config file per library, each resolvable, of this version;
#      the front ends are installed and run;
#   4. examples/c-vmm (CMake find_package, and make + pkg-config) and
#      examples/cxx-pager (find_package) are built against the prefix and
#      run: the C++ one must pass here; the C one (its make build) needs KVM
#      and exits 77 without it (a failure under SSIHV_REQUIRE_KVM=1). The
#      `example_c_vmm` test (label kvm) runs its CMake build, also in the
#      lab VM.
# Usage: install_test.sh <build dir> <source dir> <work dir> <version>
set -euo pipefail
build=$1 src=$(cd "$2" && pwd) work=$3 version=$4
prefix=$work/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

rm -rf "$work"
mkdir -p "$work"
step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
libdir=
for d in lib lib64 "$(cd "$prefix" && echo lib/*-linux-gnu)"; do
  if [ -d "$prefix/$d/pkgconfig" ]; then libdir=$d; break; fi
done
[ -n "$libdir" ] || fail "no <prefix>/lib*/pkgconfig installed"

step "installed headers = the libraries' public headers"
(cd "$src" && for d in lib*/include; do (cd "$d" && find . -name '*.h'); done) |
  sort >"$work/public-headers.txt"
(cd "$prefix/include" && find . -type f) | sort >"$work/installed-headers.txt"
diff -u "$work/public-headers.txt" "$work/installed-headers.txt" ||
  fail "installed headers differ from libX/include/ (above: - missing, + extra)"

step "every installed header compiles against the prefix alone"
{
  echo '#include <ssihv/pager.h>'
  sed 's|^\./|#include <|; s|$|>|' "$work/installed-headers.txt"
} >"$work/all_headers.cc"
c++ -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I"$prefix/include" \
  "$work/all_headers.cc"
echo '#include <ssihv/pager.h>' >"$work/pager_h.c"
for std in c89 c99 c11; do
  cc -std=$std -pedantic-errors -Wall -Wextra -Werror -fsyntax-only \
    -I"$prefix/include" "$work/pager_h.c"
done
c++ -std=c++11 -pedantic-errors -Wall -Wextra -Werror -fsyntax-only \
  -I"$prefix/include" -x c++ "$work/pager_h.c"

step "bindgen <ssihv/pager.h>"
if command -v bindgen >/dev/null; then
  bindgen "$prefix/include/ssihv/pager.h" --allowlist-function 'ssihv_.*' \
    --allowlist-type 'ssihv_.*' --allowlist-var 'SSIHV_.*' \
    -o "$work/pager_bindings.rs" -- -I"$prefix/include"
  for item in 'pub fn ssihv_pager_create(' 'pub fn ssihv_pager_get_stats(' \
              'pub struct ssihv_pager_stats' 'pub type ssihv_fill_fn' \
              'pub const SSIHV_RANGE_SHMEM'; do
    grep -qF "$item" "$work/pager_bindings.rs" ||
      fail "bindgen output lacks '$item'"
  done
else
  fail "bindgen not found (Debian package bindgen; scripts/setup.sh installs it)"
fi

step "pkg-config files"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
pcs=$(cd "$PKG_CONFIG_PATH" && ls ssihv-*.pc | sed 's/\.pc$//')
for lib in "$src"/lib*/CMakeLists.txt; do
  grep -o 'ssihv_install_library([a-z_]*)' "$lib" |
    sed 's/ssihv_install_library(\(.*\))/ssihv-\1/; s/_/-/g'
done | sort >"$work/expected-pcs.txt"
[ "$(echo "$pcs" | sort)" = "$(cat "$work/expected-pcs.txt")" ] ||
  fail "pkg-config files: $(echo $pcs) (expected $(echo $(cat "$work/expected-pcs.txt")))"
for pc in $pcs; do
  pkg-config --exists --print-errors "$pc" || fail "pkg-config $pc"
  [ "$(pkg-config --modversion "$pc")" = "$version" ] ||
    fail "$pc: version $(pkg-config --modversion "$pc"), expected $version"
done

step "front ends"
for exe in ssihv-vmm acpi-gen dsm-sim ssihv-uffd-handler; do
  "$prefix/bin/$exe" --help >/dev/null || fail "$exe --help"
done

step "build the examples against the prefix"
cmake -S "$src/examples/c-vmm" -B "$work/c-cmake" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/c-cmake.log" ||
  { cat "$work/c-cmake.log"; fail "configure examples/c-vmm"; }
cmake --build "$work/c-cmake"
mkdir -p "$work/c-make"
make -s -C "$work/c-make" -f "$src/examples/c-vmm/Makefile" \
  VPATH="$src/examples/c-vmm"
cmake -S "$src/examples/cxx-pager" -B "$work/cxx-cmake" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/cxx-cmake.log" ||
  { cat "$work/cxx-cmake.log"; fail "configure examples/cxx-pager"; }
cmake --build "$work/cxx-cmake"

# A shared build's libraries, for the make-built example (no RPATH).
export LD_LIBRARY_PATH=$prefix/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

step "run the C++ example"
"$work/cxx-cmake/ssihv-example-pager" >"$work/cxx-example.log" ||
  { cat "$work/cxx-example.log"; fail "examples/cxx-pager"; }
tail -1 "$work/cxx-example.log"

step "run the C example (KVM), the make + pkg-config build"
status=0
"$work/c-make/ssihv-example-vmm" || status=$?
if [ $status -eq 77 ]; then
  [ "${SSIHV_REQUIRE_KVM:-0}" != 1 ] || fail "the C example skipped: KVM required"
  echo "(skipped: no usable /dev/kvm here; the lab VM runs it: example_c_vmm)"
elif [ $status -ne 0 ]; then
  fail "the C example exited $status"
fi
echo "install test passed"
