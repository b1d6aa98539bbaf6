#!/usr/bin/env bash
# Prepares the lab VM (issue 3): cached and idempotent; never installs a
# kernel or changes the host's apt sources.
#
#   tests/lab/prepare.sh [--refresh] [--print-env]
#
# Into the cache ($SSIHV_LAB_CACHE, default tests/lab/cache/, gitignored):
#   kernel/<pkg>/      the current Debian 12 linux-image-*-amd64 package,
#                      `apt-get download` + `dpkg-deb -x`, then `depmod -b`
#   qemu/<version>/    QEMU 10 from bookworm-backports, fetched with a private
#                      apt configuration (apt/), unpacked with `dpkg-deb -x`
#   initramfs-<key>.cpio       busybox-static, init, kvm-hold and the modules
#                              the lab needs, resolved through modules.dep
#   boot-initramfs-<key>.cpio  busybox + boot-init, for the nested
#                              `qemu -accel kvm` boot baseline
#   lab.env            what run.sh needs (also printed by --print-env)
#
# The first run resolves the kernel and QEMU versions and pins them in
# resolved.env; later runs use the cache without the network. --refresh
# resolves again (a newer Debian kernel or backports QEMU).
#
# Environment:
#   SSIHV_LAB_CACHE          cache folder
#   SSIHV_LAB_OMIT_MODULES   modules to leave out of the initramfs (comma or
#                            space separated, e.g. kvm_amd): proves that the
#                            lab label then fails
#   SSIHV_LAB_QEMU           "backports" (default), "host" (Debian 12's QEMU
#                            7.2, single-threaded TCG) or a qemu binary path
#   SSIHV_LAB_KERNEL_PKG     a linux-image package name instead of the current
#   SSIHV_LAB_DEBIAN_MIRROR  mirror for bookworm-backports (default: the one
#                            this machine's apt sources use for bookworm)
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
cache=${SSIHV_LAB_CACHE:-$here/cache}
refresh=0 print_env=0
for arg in "$@"; do
  case "$arg" in
    --refresh) refresh=1 ;;
    --print-env) print_env=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
      exit 0 ;;
    *) echo "prepare.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "prepare: $*" >&2; }
fail() { echo "prepare: ERROR: $*" >&2; exit 1; }

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
exec 9>"$cache/.lock"
flock 9

# The modules the lab needs; modules.dep brings in their dependencies.
# crc32_generic is only a soft dependency of rdma_rxe (busybox modprobe
# ignores softdeps); kvm is listed on its own so that omitting kvm_amd
# leaves a kernel with kvm.ko but no /dev/kvm.
lab_modules="virtio_pci 9pnet_virtio 9p overlay kvm kvm_amd
  crc32_generic ib_core ib_uverbs rdma_rxe dummy veth"

# ---------------------------------------------------------------- kernel
host_apt() { apt-get -q -o APT::Sandbox::User=root "$@"; }

resolve_kernel() {
  if [ -n "${SSIHV_LAB_KERNEL_PKG:-}" ]; then
    echo "$SSIHV_LAB_KERNEL_PKG"
    return
  fi
  # The metapackage points at the current bookworm kernel; if its lists are
  # missing, take the newest linux-image-<abi>-amd64 apt knows.
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9].*-amd64$/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64$' |
      awk '{print $1}' | sort -V | tail -1)
  fi
  [ -n "$pkg" ] || return 1
  echo "$pkg"
}

fetch_kernel() {  # pkg -> $cache/kernel/<pkg>
  local pkg=$1 dir=$cache/kernel/$1 tmp
  [ -e "$dir/.done" ] && return 0
  tmp=$(mktemp -d "$cache/tmp.XXXXXX")
  log "downloading $pkg (apt-get download; not installed)"
  (cd "$tmp" && host_apt download "$pkg" >&2) ||
    { log "download failed; apt-get update and retry"; host_apt update >&2 &&
      (cd "$tmp" && host_apt download "$pkg" >&2); } ||
    fail "apt-get download $pkg"
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/root"
  local kver
  kver=$(ls "$tmp/root/lib/modules")
  # The .deb ships no modules.dep: generate it.
  depmod -b "$tmp/root" "$kver"
  rm -rf "$dir"
  mkdir -p "$cache/kernel"
  mv "$tmp/root" "$dir"
  rm -rf "$tmp"
  touch "$dir/.done"
}

# ------------------------------------------------------------------ qemu
debian_mirror() {
  if [ -n "${SSIHV_LAB_DEBIAN_MIRROR:-}" ]; then
    echo "$SSIHV_LAB_DEBIAN_MIRROR"
    return
  fi
  # The URI this machine uses for the plain `bookworm` suite (deb822 or
  # one-line format); security and third-party sources are skipped.
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
      /^URIs:/ {u=$2} /^Suites:/ {for (i=2;i<=NF;i++) if ($i=="bookworm") s=1}
      /^$/ {if (s && u!="") {print u; exit} u=""; s=0}
      END {if (s && u!="") print u}' | head -1)
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^https?:/ && $(i+1)=="bookworm") {print $i; exit}}')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

private_apt() {  # apt-get with its own sources, lists and archives
  local a=$cache/apt
  apt-get -q -o Dir::Etc::SourceList="$a/sources.list" \
    -o Dir::Etc::SourceParts="$a/sources.list.d" \
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" \
    -o APT::Sandbox::User=root "$@"
}

private_apt_cache() {
  local a=$cache/apt
  apt-cache -o Dir::Etc::SourceList="$a/sources.list" \
    -o Dir::Etc::SourceParts="$a/sources.list.d" \
    -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" "$@"
}

fetch_backports_qemu() {  # -> prints the version unpacked under qemu/
  local a=$cache/apt mirror tmp ver
  mirror=$(debian_mirror)
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/sources.list.d"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
    "$mirror bookworm-backports main" > "$a/sources.list"
  log "private apt update: $mirror bookworm-backports (host sources untouched)"
  private_apt update >&2 || return 1
  ver=$(private_apt_cache policy qemu-system-x86 |
    awk '/Candidate:/ {print $2; exit}')
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || return 1
  local dir=$cache/qemu/${ver//[:~+]/_}
  if [ ! -e "$dir/.done" ]; then
    tmp=$(mktemp -d "$cache/tmp.XXXXXX")
    log "downloading qemu-system-x86 $ver and its data (bookworm-backports)"
    (cd "$tmp" && private_apt download "qemu-system-x86=$ver" \
      "qemu-system-data=$ver") >&2 || { rm -rf "$tmp"; return 1; }
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
    rm -rf "$dir"
    mkdir -p "$cache/qemu"
    mv "$tmp/root" "$dir"
    rm -rf "$tmp"
    touch "$dir/.done"
  fi
  echo "${ver//[:~+]/_}"
}

usable_qemu() {  # binary datadir -> 0 when it runs here
  local missing
  missing=$(ldd "$1" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
  if [ -n "$missing" ]; then
    log "$1 lacks libraries: $missing"
    return 1
  fi
  "$1" -L "$2" --version >/dev/null 2>&1
}

# ------------------------------------------------------------- initramfs
resolve_modules() {  # kver -> module files (relative), deps first
  local mdir=$cache/kernel/$kernel_pkg/lib/modules/$1 m line
  local -a omit
  local omit_list=${SSIHV_LAB_OMIT_MODULES:-}
  read -r -a omit <<< "${omit_list//,/ }"
  for m in $lab_modules; do
    for o in "${omit[@]}"; do [ "${o//-/_}" = "$m" ] && continue 2; done
    line=$(awk -v m="$m" -F: '{
        n=$1; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n);
        gsub(/-/, "_", n); if (n==m) {print; exit} }' "$mdir/modules.dep")
    [ -n "$line" ] || { grep -qE "/${m//_/[-_]}\.ko" "$mdir/modules.builtin" ||
      fail "module $m is neither in modules.dep nor built in"; continue; }
    # modules.dep lists dependencies nearest first: load order is reversed.
    echo "${line#*:}" | tr ' ' '\n' | awk 'NF' | tac
    echo "${line%%:*}"
  done | awk '!seen[$0]++'
}

build_kvm_hold() {  # -> path of a static kvm-hold built from its source
  local src=$here/kvm-hold.c key out
  key=$(sha256sum "$src" | cut -c1-12)
  out=$cache/bin/kvm-hold-$key
  if [ ! -x "$out" ]; then
    mkdir -p "$cache/bin"
    gcc -O2 -static -Wall -Werror -o "$out.tmp" "$src" || fail "build kvm-hold"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

pack_cpio() {  # staging-dir out.cpio
  (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    > "$2.tmp"
  mv "$2.tmp" "$2"
}

stage_busybox() {  # staging-dir init-script
  mkdir -p "$1"/{bin,sbin,dev,proc,sys,tmp,etc}
  cp /bin/busybox "$1/bin/busybox"
  cp "$2" "$1/init"
  chmod 755 "$1/init"
  # The kernel opens /dev/console before /init runs (init reopens it after
  # mounting devtmpfs, so without root to mknod only early output is lost).
  mknod -m 600 "$1/dev/console" c 5 1 2>/dev/null ||
    log "cannot mknod dev/console (not root?): init's first lines are lost"
}

build_initramfs() {  # kver -> path
  local kver=$1 mods hold key out stage mdir
  mdir=$cache/kernel/$kernel_pkg/lib/modules/$kver
  mods=$(resolve_modules "$kver")
  hold=$(build_kvm_hold)
  key=$( { echo "$kver $mods"; cat "$here/init" "$hold" /bin/busybox \
    "$here/prepare.sh"; } | sha256sum | cut -c1-12)
  out=$cache/initramfs-$key.cpio
  if [ ! -e "$out" ]; then
    log "building initramfs ($(echo "$mods" | wc -l) modules: $(echo "$mods" |
      sed 's|.*/||; s|\.ko.*||' | tr '\n' ' '))"
    stage=$(mktemp -d "$cache/tmp.XXXXXX")
    stage_busybox "$stage" "$here/init"
    cp "$hold" "$stage/bin/kvm-hold"
    mkdir -p "$stage/lib/modules/$kver"
    for f in $mods; do
      mkdir -p "$stage/lib/modules/$kver/$(dirname "$f")"
      cp "$mdir/$f" "$stage/lib/modules/$kver/$f"
    done
    cp "$mdir"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$kver/"
    depmod -b "$stage" "$kver"
    pack_cpio "$stage" "$out"
    rm -rf "$stage"
  fi
  # Keep what is in use; drop variants nobody used for a day.
  touch "$out"
  find "$cache" -maxdepth 1 -name 'initramfs-*.cpio' -mtime +0 -delete
  echo "$out"
}

build_boot_initramfs() {  # -> path
  local key out stage
  key=$(cat "$here/boot-init" /bin/busybox | sha256sum | cut -c1-12)
  out=$cache/boot-initramfs-$key.cpio
  if [ ! -e "$out" ]; then
    stage=$(mktemp -d "$cache/tmp.XXXXXX")
    stage_busybox "$stage" "$here/boot-init"
    pack_cpio "$stage" "$out"
    rm -rf "$stage"
  fi
  echo "$out"
}

# ------------------------------------------------------------------ main
# (grep without -q: with pipefail, -q's early exit would fail the pipe.)
[ -x /bin/busybox ] && /bin/busybox --list | grep -x modprobe >/dev/null ||
  fail "busybox-static is missing (scripts/setup.sh installs it)"
rm -rf "$cache"/tmp.*

if [ "$refresh" = 1 ] || [ ! -e "$cache/resolved.env" ]; then
  kernel_pkg=$(resolve_kernel) ||
    { log "apt knows no linux-image-*-amd64: apt-get update"; host_apt update >&2
      kernel_pkg=$(resolve_kernel); } ||
    fail "no linux-image-*-amd64 known to apt"
  fetch_kernel "$kernel_pkg"
  qemu_choice=${SSIHV_LAB_QEMU:-backports}
  qemu_ver=
  if [ "$qemu_choice" = backports ]; then
    qemu_ver=$(fetch_backports_qemu) ||
      { log "WARNING: bookworm-backports QEMU unavailable"; qemu_ver=; }
  fi
  printf 'kernel_pkg=%q\nqemu_ver=%q\n' "$kernel_pkg" "$qemu_ver" \
    > "$cache/resolved.env"
fi
# shellcheck source=/dev/null
. "$cache/resolved.env"
[ -n "${SSIHV_LAB_KERNEL_PKG:-}" ] && kernel_pkg=$SSIHV_LAB_KERNEL_PKG
fetch_kernel "$kernel_pkg"
kdir=$cache/kernel/$kernel_pkg
kver=$(ls "$kdir/lib/modules")

# QEMU: backports 10.x with multi-threaded TCG (workaround (a) of the 7.2
# hang); otherwise Debian 12's 7.2 with single-threaded TCG (workaround (c)).
qemu_choice=${SSIHV_LAB_QEMU:-backports}
qemu_bin= qemu_data= qemu_kind= tcg_thread=
if [ "$qemu_choice" = backports ] && [ -n "$qemu_ver" ]; then
  qdir=$cache/qemu/$qemu_ver
  if usable_qemu "$qdir/usr/bin/qemu-system-x86_64" "$qdir/usr/share/qemu"; then
    qemu_bin=$qdir/usr/bin/qemu-system-x86_64
    qemu_data=$qdir/usr/share/qemu
    qemu_kind="qemu-$("$qemu_bin" -L "$qemu_data" --version |
      awk 'NR==1 {print $4}')-bookworm-backports"
    tcg_thread=multi
  else
    log "WARNING: backports QEMU $qemu_ver does not run here"
  fi
elif [ "$qemu_choice" != backports ] && [ "$qemu_choice" != host ]; then
  qemu_bin=$qemu_choice
  qemu_kind="qemu-$("$qemu_bin" --version | awk 'NR==1 {print $4}')-custom"
  tcg_thread=${SSIHV_LAB_TCG_THREAD:-multi}
fi
if [ -z "$qemu_bin" ]; then
  qemu_bin=$(command -v qemu-system-x86_64) ||
    fail "no qemu-system-x86_64 (scripts/setup.sh installs qemu-system-x86)"
  qemu_kind="qemu-$("$qemu_bin" --version |
    awk 'NR==1 {print $4}')-host-fallback-thread=single"
  tcg_thread=single
  log "using the host's QEMU with thread=single (slower; see docs/LAB.md)"
fi

initrd=$(build_initramfs "$kver")
boot_initrd=$(build_boot_initramfs)
env_text=$(printf 'LAB_CACHE=%q\nLAB_KVER=%q\nLAB_KERNEL=%q\nLAB_INITRD=%q\nLAB_BOOT_INITRD=%q\nLAB_QEMU=%q\nLAB_QEMU_DATA=%q\nLAB_QEMU_KIND=%q\nLAB_TCG_THREAD=%q\nLAB_OMIT_MODULES=%q\n' \
  "$cache" "$kver" "$kdir/boot/vmlinuz-$kver" "$initrd" "$boot_initrd" \
  "$qemu_bin" "$qemu_data" "$qemu_kind" "$tcg_thread" \
  "${SSIHV_LAB_OMIT_MODULES:-}")
# lab.env describes the default lab (tests read its kernel paths); the
# experiment knobs only print theirs.
if [ -z "${SSIHV_LAB_OMIT_MODULES:-}${SSIHV_LAB_QEMU:-}${SSIHV_LAB_KERNEL_PKG:-}" ]; then
  echo "$env_text" > "$cache/lab.env.tmp" && mv "$cache/lab.env.tmp" "$cache/lab.env"
fi
if [ "$print_env" = 1 ]; then
  echo "$env_text"
else
  log "ready: kernel $kver, $qemu_kind, $(basename "$initrd")"
fi
