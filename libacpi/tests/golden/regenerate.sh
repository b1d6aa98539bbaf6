#!/usr/bin/env bash
# Regenerates the golden ACPI blobs of every topology in this folder from its
# cluster.json, with acpi-gen's defaults (RSDP at 0xE0000, tables right
# after it). Review a change with `iasl -d <dir>/<table>.dat` before
# committing, and commit the blobs on their own.
#   Usage: libacpi/tests/golden/regenerate.sh [path/to/acpi-gen]
# (default: build/apps/acpi-gen/acpi-gen)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
gen=${1:-$root/build/apps/acpi-gen/acpi-gen}
[ -x "$gen" ] || { echo "regenerate.sh: no acpi-gen at $gen (build it first)" >&2; exit 1; }
for dir in "$here"/*/; do
  "$gen" --config "$dir/cluster.json" --out "$dir" --tables all
  echo "regenerated ${dir#$root/}"
done
