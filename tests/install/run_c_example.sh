#!/usr/bin/env bash
# Runs examples/c-vmm as built against the installed tree by the
# install_examples_test (label kvm: the lab VM runs it with real KVM).
set -uo pipefail
exe=$1
if [ ! -x "$exe" ]; then
  echo "FAIL: $exe is not built: run the install_examples_test first" \
       "(ctest -R install_examples_test)" >&2
  exit 1
fi
"$exe"
status=$?
if [ $status -eq 77 ] && [ "${SSIHV_REQUIRE_KVM:-0}" = 1 ]; then
  echo "FAIL kvm required: the example skipped" >&2
  exit 1
fi
exit $status
