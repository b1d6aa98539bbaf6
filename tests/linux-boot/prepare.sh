#!/usr/bin/env bash
# Prepares the Linux boot test and the VMM demo (cached, idempotent):
#
#   tests/linux-boot/prepare.sh [--print-env]
#
# - the kernel: the Debian 12 linux-image package the lab VM uses
#   (tests/lab/prepare.sh downloads and unpacks it: `apt-get download` +
#   `dpkg-deb -x`, never installed on the host); without the lab script, the
#   same package is fetched here. $SSIHV_LINUX_KERNEL overrides it.
# - the initramfs: busybox-static + tests/linux-boot/init + ipi-pingpong
#   (ipi_pingpong.c) and the distributed VM's guest programs
#   (tests/dist/guest/*.c: coherence, cpubench, iortt), each built static
#   with the host's cc, a newc cpio.
#
# Writes $cache/boot.env (LINUX_BOOT_KERNEL=..., LINUX_BOOT_INITRD=...) and
# prints it with --print-env. When everything is up to date it writes
# nothing (the lab VM runs it on a read-only tree).
# Cache: $SSIHV_BOOT_CACHE, default tests/linux-boot/cache/ (gitignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${SSIHV_BOOT_CACHE:-$here/cache}
print_env=0
for arg in "$@"; do
  case "$arg" in
    --print-env) print_env=1 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "prepare.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done
log() { echo "linux-boot: $*" >&2; }
fail() { echo "linux-boot: ERROR: $*" >&2; exit 1; }

busybox=/bin/busybox
# grep reads the whole list (no -q): with pipefail, a grep that quits at
# the first match can SIGPIPE busybox and fail the check under load.
[ -x "$busybox" ] && "$busybox" --list | grep -x reboot > /dev/null ||
  fail "busybox-static is missing (scripts/setup.sh installs it)"
guest_programs=(coherence cpubench iortt)  # tests/dist/guest/NAME.c
guest_srcs=()
for p in "${guest_programs[@]}"; do guest_srcs+=("$root/tests/dist/guest/$p.c"); done
initrd_key=$(cat "$here/init" "$here/ipi_pingpong.c" "$busybox" "${guest_srcs[@]}" |
  sha256sum | cut -c1-12)
initrd=$cache/initramfs-$initrd_key.cpio

emit() {
  if [ "$print_env" = 1 ]; then cat "$cache/boot.env"; fi
}

# Up to date: nothing to write (read-only trees, e.g. inside the lab VM).
if [ -z "${SSIHV_LINUX_KERNEL:-}" ] && [ -r "$cache/boot.env" ]; then
  # shellcheck source=/dev/null
  . "$cache/boot.env"
  if [ "${LINUX_BOOT_INITRD:-}" = "$initrd" ] && [ -r "$initrd" ] &&
    [ -r "${LINUX_BOOT_KERNEL:-/nonexistent}" ]; then
    emit
    exit 0
  fi
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

kernel=${SSIHV_LINUX_KERNEL:-}
if [ -z "$kernel" ] && [ -x "$root/tests/lab/prepare.sh" ]; then
  log "kernel: reusing the lab VM's Debian kernel (tests/lab/prepare.sh)"
  if env_text=$("$root/tests/lab/prepare.sh" --print-env); then
    kernel=$(eval "$env_text"; echo "${LAB_KERNEL:-}")
  else
    log "tests/lab/prepare.sh failed; fetching the kernel here"
  fi
fi
if [ -z "$kernel" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9].*-amd64$/ {print $2; exit}')
  [ -n "$pkg" ] || fail "no linux-image-*-amd64 known to apt (apt-get update)"
  dir=$cache/kernel/$pkg
  if [ ! -e "$dir/.done" ]; then
    tmp=$(mktemp -d "$cache/tmp.XXXXXX")
    log "downloading $pkg (apt-get download; not installed)"
    (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "$pkg" >&2) ||
      fail "apt-get download $pkg"
    dpkg-deb -x "$tmp/${pkg}"_*.deb "$tmp/root"
    rm -rf "$dir"
    mkdir -p "$cache/kernel"
    mv "$tmp/root" "$dir"
    rm -rf "$tmp"
    touch "$dir/.done"
  fi
  kernel=$(ls "$dir"/boot/vmlinuz-* | head -1)
fi
[ -r "$kernel" ] || fail "kernel $kernel is not readable"

if [ ! -e "$initrd" ]; then
  stage=$(mktemp -d "$cache/tmp.XXXXXX")
  mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,etc}
  cp "$busybox" "$stage/bin/busybox"
  cc -static -O2 -pthread -o "$stage/bin/ipi-pingpong" "$here/ipi_pingpong.c" ||
    fail "building ipi-pingpong (static: the libc6-dev package)"
  cp "$here/init" "$stage/init"
  # The distributed VM tests' programs: the coherence stress and the
  # performance run's benchmarks.
  for p in "${guest_programs[@]}"; do
    gcc -O2 -static -Wall -pthread -o "$stage/bin/$p" \
      "$root/tests/dist/guest/$p.c" ||
      fail "build tests/dist/guest/$p.c (gcc -static)"
  done
  chmod 755 "$stage/init"
  # The kernel's built-in initramfs already has /dev/console; add it anyway
  # when we can (root), for kernels built without one.
  mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
  (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$stage"
  log "built $(basename "$initrd") ($(du -k "$initrd" | cut -f1) KiB)"
fi
printf 'LINUX_BOOT_KERNEL=%q\nLINUX_BOOT_INITRD=%q\n' "$kernel" "$initrd" \
  > "$cache/boot.env.tmp"
mv "$cache/boot.env.tmp" "$cache/boot.env"
emit
