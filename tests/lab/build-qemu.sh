#!/usr/bin/env bash
# Builds the lab's QEMU: the pinned Debian source with the fixes in
# tests/lab/qemu/*.patch (docs/LAB.md, "The lab's own QEMU bugs"). Called by
# prepare.sh, which sources it for build_lab_qemu; cached under
# $cache/qemu-build/<key>/, where <key> covers the source, the patches, the
# configure flags and this script, so a change to any of them rebuilds.
#
# Needs the host packages in scripts/packages.txt ("lab QEMU build") and,
# from bookworm-backports through prepare.sh's private apt, the QEMU source
# (deb-src) and the meson >= 1.5 / pycotap QEMU 10's configure asks for
# (unpacked into the build folder, never installed).

qemu_patch_dir=$here/qemu
qemu_configure_flags=(
  --target-list=x86_64-softmmu --disable-install-blobs --disable-docs
  --disable-werror --disable-debug-info --disable-user --disable-tools
  --disable-guest-agent --disable-xen --disable-kvm --disable-rust
  --disable-gtk --disable-sdl --disable-vnc --disable-opengl --disable-spice
  --disable-curses --disable-gnutls --disable-nettle --disable-gcrypt
  --disable-libssh --disable-slirp --disable-vhost-user --disable-vhost-net
  --disable-vhost-kernel --enable-tcg --enable-virtfs
  # Only the devices the lab's machine has (qemu_lab_devices): 1076 files
  # to compile instead of 1323, 149 s instead of 200 s on 2 cores.
  --without-default-devices --with-devices-x86_64=lab
  # Debian's search path: SeaBIOS and the option ROMs as the package finds
  # them (run.sh adds -L with the pinned package's data).
  --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)

# The lab's devices (run.sh: q35, -nodefaults, -serial, two -virtfs): the
# board, virtio-9p over PCI, the ISA UART, and HPET, vmport and vmmouse,
# which a q35 machine creates whenever they are built. With these the
# machine's `info qtree`, `info mtree -f` and `info qom-tree` are those of
# the build with every default device (checked on 2026-12-06).
qemu_lab_devices=(CONFIG_Q35 CONFIG_VIRTIO_PCI CONFIG_VIRTIO_9P
  CONFIG_SERIAL_ISA CONFIG_HPET CONFIG_VMPORT CONFIG_VMMOUSE)

qemu_build_key() {  # version -> a short hash of everything the build uses
  {
    echo "$1"
    printf '%s\n' "${qemu_configure_flags[@]}"
    cat "$qemu_patch_dir"/*.patch "$here/build-qemu.sh"
  } | sha256sum | cut -c1-12
}

qemu_source_fetch() {  # version dest-folder -> the orig tarball in it
  local ver=$1 dest=$2 upstream dir file sha
  upstream=${ver#*:}
  upstream=${upstream%%-*}
  # The Sources index names the folder and the checksum; the tarball is
  # fetched alone (the mirror may lack the .dsc of a superseded revision)
  # and checked against that checksum.
  local record
  record=$(private_apt_cache showsrc qemu | awk -v v="$ver" '
      /^$/ {if (hit) exit; buf=""; next}
      {buf = buf $0 "\n"} /^Version: / && $2==v {hit=1}
      END {if (hit) printf "%s", buf}')
  dir=$(awk '/^Directory:/ {print $2; exit}' <<< "$record")
  read -r sha file < <(awk -v f="qemu_$upstream.orig.tar.xz" '
      /^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0} s && $3==f {print $1, $3; exit}' <<< "$record")
  [ -n "$dir" ] && [ -n "$file" ] || {
    log "the Sources index has no qemu $ver orig tarball"; return 1; }
  log "downloading $file (bookworm-backports source)"
  /usr/lib/apt/apt-helper download-file "$(debian_mirror)/$dir/$file" \
    "$dest/$file" "SHA256:$sha" >&2 || return 1
  echo "$dest/$file"
}

qemu_build_tools() {  # dest-folder -> meson and pycotap unpacked there
  local tmp deb
  tmp=$(mktemp -d "$cache/tmp.XXXXXX")
  (cd "$tmp" && private_apt download meson python3-pycotap) >&2 ||
    { rm -rf "$tmp"; return 1; }
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$1"; done
  rm -rf "$tmp"
}

qemu_build_in() {  # work-folder version -> the binary at work/build/
  local work=$1 ver=$2 tarball src p
  tarball=$(qemu_source_fetch "$ver" "$work") || return 1
  qemu_build_tools "$work/tools" || return 1
  tar -xf "$tarball" -C "$work" || return 1
  src=$(find "$work" -maxdepth 1 -type d -name 'qemu-*' | head -1)
  for p in "$qemu_patch_dir"/*.patch; do
    log "applying $(basename "$p")"
    patch -d "$src" -p1 --quiet < "$p" >&2 || return 1
  done
  printf '%s=y\n' "${qemu_lab_devices[@]}" \
    > "$src/configs/devices/x86_64-softmmu/lab.mak" || return 1
  # The "+ds" tarball has no firmware blobs to unpack.
  sed -i 's/^\(    unpack_edk2_blobs = \)bzip2.found()/\1false/' "$src/meson.build" || return 1
  log "building QEMU $ver with $(ls "$qemu_patch_dir"/*.patch | wc -l) patches (about 3 min on 2 cores)"
  mkdir -p "$work/build"
  if ! (cd "$work/build" &&
        export PATH=$work/tools/usr/bin:$PATH \
          PYTHONPATH=$work/tools/usr/lib/python3/dist-packages &&
        "$src/configure" --python=/usr/bin/python3 "${qemu_configure_flags[@]}" \
          > "$work/configure.log" 2>&1 &&
        ninja qemu-system-x86_64 > "$work/build.log" 2>&1); then
    log "QEMU build failed; the end of its log:"
    tail -n 20 "$work/configure.log" "$work/build.log" >&2 2>/dev/null || true
    return 1
  fi
}

build_lab_qemu() {  # pinned-version -> prints the folder with the binary
  local ver=$1 key dir work
  key=$(qemu_build_key "$ver")
  dir=$cache/qemu-build/$key
  if [ -e "$dir/.done" ]; then
    echo "$dir"
    return 0
  fi
  backports_apt_update || return 1
  mkdir -p "$cache/qemu-build"
  work=$(mktemp -d "$cache/qemu-build/work.XXXXXX")
  if ! qemu_build_in "$work" "$ver"; then
    rm -rf "$work"
    return 1
  fi
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  cp "$work/build/qemu-system-x86_64" "$dir/bin/"
  cp "$qemu_patch_dir"/*.patch "$dir/"
  rm -rf "$work"
  touch "$dir/.done"
  echo "$dir"
}
