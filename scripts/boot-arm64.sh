#!/usr/bin/env bash
# Boot the arm64 guest by hand (what the harness will run for GUEST_ARCH=arm64), run
# commands at its shell and print the console; the boot-to-shell time goes to stderr.
#
#   scripts/boot-arm64.sh [--suite S] [--quiet] [--dt-reserve] [--cpu C] [--gic 2|3] [--append ARGS]
#                         [--] [GUEST CMD...]
#
#   --suite S      the kernel suite (bookworm: 6.1, trixie: 6.12); QEMU_SUITE picks QEMU
#   --quiet        `quiet` on the kernel command line
#   --append ARGS  more of it (mem=768M: RAM ends at 0x70000000, and the region above it
#                  is the driver's with insmod barmap.ko reserved_base=... reserved_size=...)
#   --dt-reserve   boot with a device tree that has the reserved-memory nodes
#                  (harness/barmap/qemu/devicetree.py): the driver's reserved region and its
#                  shared-dma-pool, found by the driver itself
#   GUEST CMD      shell commands for the guest (default: uname -m; insmod barmap;
#                  barmap-check on BAR2); the guest powers off after them
# Artifacts: make qemu kernel image GUEST_ARCH=arm64 (their paths: scripts/paths.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
suite='' quiet='' dt='' cpu=cortex-a57 extra='' gic=3
while [ $# -gt 0 ]; do
	case $1 in
	--suite) suite=$2; shift 2 ;;
	--quiet) quiet=quiet; shift ;;
	--dt-reserve) dt=1; shift ;;
	--cpu) cpu=$2; shift 2 ;;
	--gic) gic=$2; shift 2 ;;
	--append) extra=$2; shift 2 ;;
	--) shift; break ;;
	-*) sed -n '2,19p' "$0" >&2; exit 2 ;;
	*) break ;;
	esac
done
export GUEST_ARCH=arm64
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --kernel-suite "$suite" --qemu-suite "${QEMU_SUITE:-}"
for f in "$QEMU_BIN" "$KENV" "$INITRD"; do
	[ -f "$f" ] || { echo "boot-arm64: no $f: make qemu kernel image GUEST_ARCH=arm64 KERNEL_SUITE=$KERNEL_SUITE" >&2; exit 1; }
done
# shellcheck disable=SC1090
. "$KENV"
[ $# -gt 0 ] || set -- 'uname -m' 'insmod /lib/modules/barmap.ko' \
	'barmap-check check --strategy bar,bar-remap,dma --pattern offset' 'barmap-check info' \
	'grep -i barmap /proc/interrupts' 'dmesg | grep -i barmap'

# The machine: virt with GICv3 (its ITS takes MSI), one root port at 00:01.0 (where
# harness/barmap/qemu/devicetree.py puts its node), barmap behind it
# shellcheck disable=SC2054 # the commas are QEMU's
machine=(-M "virt,gic-version=$gic" -cpu "$cpu" -m 1G -smp 1 -nodefaults -no-user-config
	-display none -no-reboot -serial stdio
	-device pcie-root-port,id=rp-bm0,chassis=1,slot=1,bus=pcie.0,addr=1.0 -device barmap,id=bm0,size=16M,bus=rp-bm0)
append="console=ttyAMA0 panic=-1 printk.time=1 $quiet $extra"
dtargs=()
if [ -n "$dt" ]; then
	dtb=$(PYTHONPATH="$top/harness" python3 -m barmap.qemu.devicetree "$OUT/virt-barmap.dtb" \
		"$QEMU_BIN" "${machine[@]}")
	dtargs=(-dtb "$dtb")
fi
# shellcheck disable=SC2153 # IMAGE comes from $KENV
cmd=("$QEMU_BIN" "${machine[@]}" -kernel "$IMAGE" -initrd "$INITRD" -append "$append" "${dtargs[@]}")
echo "boot-arm64: ${cmd[*]}" >&2

# the guest's commands once its shell is up; then a marker, then power off
coproc guest { "${cmd[@]}" 2>&1; }
# shellcheck disable=SC2154 # coproc sets guest_PID
start=$(date +%s%N) pid=$guest_PID
shell_ms=
while IFS= read -r -t 120 line <&"${guest[0]}"; do
	printf '%s\n' "${line%$'\r'}"
	case $line in
	*"barmap-guest: init done"*)
		shell_ms=$((($(date +%s%N) - start) / 1000000))
		{
			printf '%s\n' "$@"
			printf 'echo barmap-boot-done; poweroff -f\n'
		} >&"${guest[1]}"
		;;
	esac
done
wait "$pid" 2>/dev/null || true
[ -n "$shell_ms" ] || { echo "boot-arm64: no shell within 120 s" >&2; exit 1; }
echo "boot-arm64: $KVER: shell after $shell_ms ms (QEMU start to init done${quiet:+, quiet})" >&2
