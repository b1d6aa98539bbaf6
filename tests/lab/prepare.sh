#!/usr/bin/env bash
# Prepares the lab VM (issue 3): cached and idempotent; never installs a
# kernel or changes the host's apt sources.
#
#   tests/lab/prepare.sh [--print-env] [--latest]
#
# Into the cache ($SSIHV_LAB_CACHE, default tests/lab/cache/, gitignored):
#   kernel/<pkg>/      the current Debian 12 linux-image-*-amd64 package,
#                      `apt-get download` + `dpkg-deb -x`, then `depmod -b`
#   qemu/<version>/    QEMU 10 from bookworm-backports, fetched with a private
#                      apt configuration (apt/), unpacked with `dpkg-deb -x`
#                      (its firmware data; its binary for SSIHV_LAB_QEMU=backports)
#   qemu-build/<key>/  the lab's QEMU: that version's source with
#                      tests/lab/qemu/*.patch (build-qemu.sh)
#   initramfs-<key>.cpio       busybox-static, init, kvm-hold and the modules
#                              the lab needs, resolved through modules.dep
#   boot-initramfs-<key>.cpio  busybox + boot-init, for the nested
#                              `qemu -accel kvm` boot baseline
#   lab.env            what run.sh needs (also printed by --print-env)
#
# The kernel package and QEMU version are pinned in tests/lab/pins.env, with
# the TCG mode, CPU model and kvm_amd parameters the reliability stress chose
# (docs/LAB.md, "Reliability"); a cached pin needs no network. --latest
# prints what Debian offers now (for a deliberate update of the pins).
#
# Environment:
#   SSIHV_LAB_CACHE          cache folder
#   SSIHV_LAB_OMIT_MODULES   modules to leave out of the initramfs (comma or
#                            space separated, e.g. kvm_amd): proves that the
#                            lab label then fails
#   SSIHV_LAB_QEMU           "patched" (the pin's default: the pinned
#                            source with tests/lab/qemu/*.patch, built by
#                            build-qemu.sh), "backports" (Debian's binary of
#                            the pinned version), "host" (Debian 12's QEMU
#                            7.2, single-threaded TCG) or a qemu binary path
#   SSIHV_LAB_QEMU_DATA      firmware folder for a qemu binary path (default:
#                            the pinned package's data)
#   SSIHV_LAB_KERNEL_PKG     a linux-image package instead of the pinned one
#                            (bookworm, bookworm-security or
#                            bookworm-backports); with
#                            SSIHV_LAB_KERNEL_VERSION, that Debian version
#   SSIHV_LAB_TCG_THREAD     multi|single TCG instead of the pinned mode
#   SSIHV_LAB_CPU            QEMU -cpu model instead of the pinned one
#   SSIHV_LAB_KVM_AMD        kvm_amd parameters ("npt=1 vgif=0"; empty: the
#                            module's defaults) instead of the pinned ones
#   SSIHV_LAB_KERNEL_ARGS    the lab kernel's extra command line (e.g.
#                            "transparent_hugepage=never") instead of the
#                            pinned one
#   SSIHV_LAB_DEBIAN_MIRROR  mirror for bookworm-backports (default: the one
#                            this machine's apt sources use for bookworm)
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
cache=${SSIHV_LAB_CACHE:-$here/cache}
latest=0 print_env=0
for arg in "$@"; do
  case "$arg" in
    --latest) latest=1 ;;
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

kernel_dir() {  # pkg [debian-version] -> its folder in the cache
  local v=${2:-}
  echo "$cache/kernel/$1${v:+_${v//[:~+]/_}}"
}

fetch_kernel() {  # pkg [debian-version] -> unpacked at $(kernel_dir ...)
  local pkg=$1 ver=${2:-} dir tmp spec=$1
  dir=$(kernel_dir "$pkg" "$ver")
  [ -e "$dir/.done" ] && return 0
  [ -n "$ver" ] && spec="$pkg=$ver"
  tmp=$(mktemp -d "$cache/tmp.XXXXXX")
  log "downloading $spec (apt-get download; not installed)"
  # bookworm and bookworm-security through the host's apt; a package only
  # bookworm-backports has (the 6.12 kernels) through the private apt.
  if ! (cd "$tmp" && host_apt download "$spec" >&2); then
    if apt-cache show "$pkg" >/dev/null 2>&1; then
      log "download failed; apt-get update and retry"
      host_apt update >&2 && (cd "$tmp" && host_apt download "$spec" >&2)
    else
      backports_apt_update >&2 && (cd "$tmp" && private_apt download "$spec" >&2)
    fi || fail "apt-get download $spec: is the pin in tests/lab/pins.env still in the Debian archive? (tests/lab/prepare.sh --latest; docs/LAB.md, Pins)"
  fi
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

backports_apt_update() {  # the private apt's lists, once per run
  [ -e "$cache/apt/.updated.$$" ] && return 0
  local a=$cache/apt mirror
  mirror=$(debian_mirror)
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/sources.list.d"
  # deb-src: the lab builds its QEMU from the pinned source (build-qemu.sh).
  printf '%s [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s bookworm-backports main\n' \
    deb "$mirror" deb-src "$mirror" > "$a/sources.list"
  log "private apt update: $mirror bookworm-backports (host sources untouched)"
  private_apt update >&2 || return 1
  rm -f "$a"/.updated.*
  touch "$a/.updated.$$"
}

backports_candidate() {  # package -> its bookworm-backports version
  backports_apt_update >&2 || return 1
  private_apt_cache policy "$1" | awk '/Candidate:/ {print $2; exit}'
}

fetch_backports_qemu() {  # pinned-version -> prints the folder under qemu/
  local ver=$1 tmp
  local dir=$cache/qemu/${ver//[:~+]/_}
  if [ ! -e "$dir/.done" ]; then
    backports_apt_update || return 1
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
  local mdir=$kdir/lib/modules/$1 m line
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
  mdir=$kdir/lib/modules/$kver
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

# What the lab runs is pinned in pins.env (kernel package and its Debian
# version, QEMU's backports version, the TCG, CPU and kvm_amd settings).
# SSIHV_LAB_* variables override a pin for an experiment; --latest prints
# what Debian has now, for a deliberate update of the pins.
# shellcheck source=tests/lab/pins.env
. "$here/pins.env"
if [ "$latest" = 1 ]; then
  host_apt update >&2 || true
  echo "kernel: $(resolve_kernel) $(apt-cache policy "$(resolve_kernel)" |
    awk '/Candidate:/ {print $2}')"
  echo "qemu (bookworm-backports): $(backports_candidate qemu-system-x86)"
  exit 0
fi
kernel_pkg=${SSIHV_LAB_KERNEL_PKG:-$LAB_PIN_KERNEL_PKG}
kernel_ver=$LAB_PIN_KERNEL_VERSION
[ -n "${SSIHV_LAB_KERNEL_PKG:-}" ] && kernel_ver=${SSIHV_LAB_KERNEL_VERSION:-}
fetch_kernel "$kernel_pkg" "$kernel_ver"
kdir=$(kernel_dir "$kernel_pkg" "$kernel_ver")
kver=$(ls "$kdir/lib/modules")

# QEMU: the pinned backports 10.x with multi-threaded TCG (workaround (a) of
# the 7.2 hang), built from its source with the lab's fixes (the pin's
# default: docs/LAB.md, "The lab's own QEMU bugs") or as Debian ships it;
# otherwise Debian 12's 7.2 with single-threaded TCG (workaround (c)).
qemu_choice=${SSIHV_LAB_QEMU:-$LAB_PIN_QEMU_BUILD}
qemu_bin= qemu_data= qemu_kind= tcg_thread=
if [ "$qemu_choice" = patched ]; then
  # shellcheck source=build-qemu.sh
  . "$here/build-qemu.sh"
  qemu_ver=$(fetch_backports_qemu "$LAB_PIN_QEMU_VERSION") ||
    fail "the pinned bookworm-backports QEMU $LAB_PIN_QEMU_VERSION is unavailable (its firmware data is needed)"
  qbuild=$(build_lab_qemu "$LAB_PIN_QEMU_VERSION") ||
    fail "could not build the lab's QEMU $LAB_PIN_QEMU_VERSION with tests/lab/qemu/*.patch (SSIHV_LAB_QEMU=backports runs Debian's binary)"
  qemu_bin=$qbuild/bin/qemu-system-x86_64
  qemu_data=$cache/qemu/$qemu_ver/usr/share/qemu
  usable_qemu "$qemu_bin" "$qemu_data" || fail "the lab's QEMU build $qemu_bin does not run"
  qemu_kind="qemu-$("$qemu_bin" -L "$qemu_data" --version |
    awk 'NR==1 {print $4}')-patched-$(basename "$qbuild")"
  tcg_thread=${SSIHV_LAB_TCG_THREAD:-$LAB_PIN_TCG_THREAD}
elif [ "$qemu_choice" = backports ]; then
  if qemu_ver=$(fetch_backports_qemu "$LAB_PIN_QEMU_VERSION"); then
    qdir=$cache/qemu/$qemu_ver
    if usable_qemu "$qdir/usr/bin/qemu-system-x86_64" "$qdir/usr/share/qemu"; then
      qemu_bin=$qdir/usr/bin/qemu-system-x86_64
      qemu_data=$qdir/usr/share/qemu
      qemu_kind="qemu-$("$qemu_bin" -L "$qemu_data" --version |
        awk 'NR==1 {print $4}')-bookworm-backports"
      tcg_thread=${SSIHV_LAB_TCG_THREAD:-$LAB_PIN_TCG_THREAD}
    else
      log "WARNING: backports QEMU $qemu_ver does not run here"
    fi
  else
    log "WARNING: the pinned bookworm-backports QEMU $LAB_PIN_QEMU_VERSION is unavailable"
  fi
elif [ "$qemu_choice" != host ]; then
  qemu_bin=$qemu_choice
  qemu_kind="qemu-$("$qemu_bin" --version | awk 'NR==1 {print $4}')-custom"
  # A QEMU built from source has no firmware of its own: SeaBIOS and the
  # option ROMs come from the pinned package's data.
  if [ -n "${SSIHV_LAB_QEMU_DATA:-}" ]; then
    qemu_data=$SSIHV_LAB_QEMU_DATA
  elif qemu_ver=$(fetch_backports_qemu "$LAB_PIN_QEMU_VERSION"); then
    qemu_data=$cache/qemu/$qemu_ver/usr/share/qemu
  fi
  tcg_thread=${SSIHV_LAB_TCG_THREAD:-$LAB_PIN_TCG_THREAD}
fi
if [ -z "$qemu_bin" ]; then
  qemu_bin=$(command -v qemu-system-x86_64) ||
    fail "no qemu-system-x86_64 (scripts/setup.sh installs qemu-system-x86)"
  qemu_kind="qemu-$("$qemu_bin" --version |
    awk 'NR==1 {print $4}')-host-fallback-thread=single"
  tcg_thread=single
  log "using the host's QEMU with thread=single (slower; see docs/LAB.md)"
fi
lab_cpu=${SSIHV_LAB_CPU:-$LAB_PIN_CPU}
lab_kvm_amd=${SSIHV_LAB_KVM_AMD-$LAB_PIN_KVM_AMD}
lab_kernel_args=${SSIHV_LAB_KERNEL_ARGS-$LAB_PIN_KERNEL_ARGS}

initrd=$(build_initramfs "$kver")
boot_initrd=$(build_boot_initramfs)
env_text=$(printf 'LAB_CACHE=%q\nLAB_KVER=%q\nLAB_KERNEL=%q\nLAB_INITRD=%q\nLAB_BOOT_INITRD=%q\nLAB_QEMU=%q\nLAB_QEMU_DATA=%q\nLAB_QEMU_KIND=%q\nLAB_TCG_THREAD=%q\nLAB_CPU=%q\nLAB_KVM_AMD=%q\nLAB_KERNEL_ARGS=%q\nLAB_OMIT_MODULES=%q\n' \
  "$cache" "$kver" "$kdir/boot/vmlinuz-$kver" "$initrd" "$boot_initrd" \
  "$qemu_bin" "$qemu_data" "$qemu_kind" "$tcg_thread" "$lab_cpu" \
  "$lab_kvm_amd" "$lab_kernel_args" "${SSIHV_LAB_OMIT_MODULES:-}")
# lab.env describes the default lab (tests read its kernel paths); the
# experiment knobs only print theirs.
if [ -z "${SSIHV_LAB_OMIT_MODULES:-}${SSIHV_LAB_QEMU:-}${SSIHV_LAB_KERNEL_PKG:-}${SSIHV_LAB_TCG_THREAD:-}${SSIHV_LAB_CPU:-}${SSIHV_LAB_KVM_AMD+set}${SSIHV_LAB_KERNEL_ARGS+set}" ]; then
  echo "$env_text" > "$cache/lab.env.tmp" && mv "$cache/lab.env.tmp" "$cache/lab.env"
fi
if [ "$print_env" = 1 ]; then
  echo "$env_text"
else
  log "ready: kernel $kver, $qemu_kind, $(basename "$initrd")"
fi
