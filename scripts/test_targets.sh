#!/usr/bin/env bash
# Prints the build outputs (paths relative to <build dir>, one per line) that
# the tests whose labels match <regex> run: `ninja -C <dir> $(...)` builds
# just what `ctest -L <regex>` needs (ninja adds each target's dependencies,
# add_dependencies included). Reads the CTestTestfile.cmake files of a
# configured build directory. Exits 1 when a selected test runs a file
# outside the build directory (a script may run any binary: build all).
# Usage: scripts/test_targets.sh <build dir> <label regex>
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <build dir> <label regex>" >&2; exit 2; }
dir=$(cd "$1" && pwd)
find "$dir" -name CTestTestfile.cmake -print0 |
  xargs -0 awk -v re="^($2)\$" -v dir="$dir/" '
    function name_of(line) {
      match(line, /\[=\[[^]]*\]=\]/)
      return substr(line, RSTART + 3, RLENGTH - 6)
    }
    /^add_test\(/ {
      n = name_of($0)
      rest = substr($0, RSTART + RLENGTH)
      match(rest, /"[^"]*"/)
      exe[n] = substr(rest, RSTART + 1, RLENGTH - 2)
    }
    /^set_tests_properties\(/ && match($0, /LABELS "[^"]*"/) {
      labels = substr($0, RSTART + 8, RLENGTH - 9)
      n = name_of($0)
      k = split(labels, l, ";")
      for (i = 1; i <= k; i++) {
        if (l[i] !~ re) continue
        if (index(exe[n], dir) != 1) { outside = 1; print "outside: " n > "/dev/stderr" }
        else print substr(exe[n], length(dir) + 1)
        break
      }
    }
    END { exit outside }' | sort -u
