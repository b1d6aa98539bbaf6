#!/usr/bin/env bash
# The main job on the embedded default 2-node cluster: installs what is
# missing, builds, and prints the ACPI NUMA tables acpi-gen generates for it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >&2
"$root/scripts/build.sh" release >/dev/null
exec "$root/build/apps/acpi-gen/acpi-gen" --dump
