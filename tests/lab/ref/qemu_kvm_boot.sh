#!/usr/bin/env bash
# Reference program: Debian's qemu-system-x86_64 -accel kvm boots the lab's
# own Debian kernel to a busybox init (tests/lab/boot-init) and powers off.
# In the lab this is a nested guest (KVM on QEMU's emulated SVM). The time
# from QEMU's start to the init's first line is the boot-time baseline the
# VMM issue compares ssihv-vmm against; it is saved as
# <results>/qemu_kvm_boot.txt (lab: <build>/lab-results/qemu_kvm_boot.txt).
. "$(dirname "$0")/lib.sh"
require_kvm
# The baseline is defined in the lab. Outside it, KVM hosts differ (on the
# nested dev VMs here, a Linux guest under -accel kvm stalls before its first
# console line): run it there only on request.
if [ "${SSIHV_LAB:-}" != 1 ] && [ "${SSIHV_REQUIRE_KVM:-}" != 1 ]; then
  echo "SKIP kvm: the boot baseline runs inside the lab VM (tests/lab/run.sh)"
  exit 77
fi
env_file=${SSIHV_LAB_CACHE:-$(dirname "$0")/../cache}/lab.env
[ -r "$env_file" ] ||
  skip_or_fail kvm "no lab kernel: $env_file missing (run tests/lab/prepare.sh)"
. "$env_file"
qemu=${SSIHV_BOOT_QEMU:-/usr/bin/qemu-system-x86_64}
out=$(results_dir)
cmdline="console=ttyS0 panic=-1 quiet"
# -display none (not -nographic): SeaBIOS then keeps off the serial port.
args=(-machine q35 -accel kvm -cpu host -smp 1 -m 256M -display none -no-reboot
      -nodefaults -nic none -serial stdio
      -kernel "$LAB_KERNEL" -initrd "$LAB_BOOT_INITRD" -append "$cmdline")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ms() { echo $(( $(date +%s%N) / 1000000 )); }
start=$(ms)
init_ms=
qemu_rc=0
# Stamp the marker line as it arrives; a stuck guest is killed at 180 s.
while IFS= read -r line; do
  echo "$line" >> "$tmp/console"
  if [ -z "$init_ms" ] && [[ "$line" == *SSIHV_BOOT_INIT_REACHED* ]]; then
    init_ms=$(( $(ms) - start ))
    marker=$line
  fi
done < <(r=0; timeout -k 5 180 "$qemu" "${args[@]}" </dev/null 2>&1 || r=$?
         echo; echo "QEMU_EXIT $r")
total_ms=$(( $(ms) - start ))
qemu_rc=$(sed -n 's/^QEMU_EXIT \([0-9]*\)$/\1/p' "$tmp/console")
tr -d '\r' < "$tmp/console" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g'
[ -n "$init_ms" ] || fail "the guest's init never ran (qemu exit $qemu_rc)"
[ "$qemu_rc" = 0 ] || fail "qemu exited $qemu_rc after the init ran"
# -no-reboot makes a guest reset (a triple fault) exit 0 too: the guest must
# have powered off itself.
grep -q 'reboot: Power down' "$tmp/console" ||
  fail "the guest did not power off by itself (a reset or a crash; see its console above)"
{
  echo "# qemu-system-x86_64 -accel kvm boot of the lab kernel to init"
  echo "# $(date -u +%FT%TZ) host kernel $(uname -r) lab=${SSIHV_LAB:-0} ${SSIHV_LAB_QEMU:-}"
  echo "# $("$qemu" --version | head -1); kernel $LAB_KVER; cmdline: $cmdline"
  echo "# ${args[*]}"
  echo "qemu_start_to_init_ms=$init_ms"
  echo "qemu_start_to_exit_ms=$total_ms"
  echo "guest_${marker#*SSIHV_BOOT_INIT_REACHED }" | tr -d '\r'
} > "$out/qemu_kvm_boot.txt.tmp"
mv "$out/qemu_kvm_boot.txt.tmp" "$out/qemu_kvm_boot.txt"
cat "$out/qemu_kvm_boot.txt"
echo "PASS: qemu -accel kvm reached the guest init in ${init_ms} ms"
