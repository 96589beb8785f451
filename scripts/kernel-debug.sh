#!/usr/bin/env bash
# Build a debug guest kernel from the distribution's kernel source (Debian's
# patches applied), no root install: x86_64_defconfig plus
# images/debug-kernel.config (KASAN, lockdep, UBSAN, KFENCE, DEBUG_VM, ...).
#
#   scripts/kernel-debug.sh [SUITE]     (make ... KERNEL_FLAVOR=debug)
#
# Everything lives in KERNEL_DIR/debug (scripts/paths.sh):
#   dl/ src/     the linux source package (private apt state of scripts/kernel.sh)
#   build/       the O= build: bzImage (booted), vmlinux, the tree modules build against
#   mod/         modules_install
#   kernel.env   KVER=... VMLINUZ=... VMLINUX=... KDIR=... MODDIR=... as scripts/kernel.sh
# The build is incremental: a changed config fragment rebuilds what it touches.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --kernel-suite "${1:-}" --kernel-flavor debug
suite=$KERNEL_SUITE
base=$KERNEL_DIR/debug
src=$base/src
build=$base/build
fragment=$top/images/debug-kernel.config

say() { printf 'barmap kernel[%s debug]: %s\n' "$suite" "$*" >&2; }

fetch() {
	[ -f "$src/.barmap-fetched" ] && return 0
	local apt=$KERNEL_DIR/apt dir got
	say "fetching the kernel source package (linux, ~140 MB)"
	barmap_apt state "$apt" "$suite" >/dev/null
	barmap_apt update "$apt"
	rm -rf "$base/dl" "$src"
	# newest first, the next when the pool lacks one the index names (apt.py source)
	got=$(barmap_apt source "$apt" linux --to "$base/dl" --download-only)
	got=${got%% *}
	say "linux $got: fetched"
	dir=$base/dl/unpacked
	dpkg-source -x "$base"/dl/linux_*.dsc "$dir" >/dev/null
	mv "$dir" "$src"
	rm -rf "$base/dl"
	touch "$src/.barmap-fetched"
}

configure() {
	mkdir -p "$build"
	if [ ! -f "$build/.config" ] || [ "$fragment" -nt "$build/.config" ]; then
		say "configuring: x86_64_defconfig + ${fragment#"$top"/}"
		make -s -C "$src" O="$build" x86_64_defconfig >/dev/null
		"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >/dev/null
		make -s -C "$src" O="$build" olddefconfig >/dev/null
		# every option the fragment asks for must have survived olddefconfig
		local want missing=()
		while read -r want; do
			grep -qx -- "$want" "$build/.config" || missing+=("$want")
		done < <(grep -E '^CONFIG_[A-Z0-9_]+=' "$fragment")
		# and every option it turns off ("# CONFIG_X is not set") is off
		while read -r want; do
			! grep -q "^$want=" "$build/.config" || missing+=("# $want is not set")
		done < <(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p' "$fragment")
		if [ ${#missing[@]} -gt 0 ]; then
			say "the kernel did not take: ${missing[*]}"
			exit 1
		fi
	fi
}

# Built, and the fragment unchanged since: nothing to do (BARMAP_REFRESH=1 checks
# the tree again, which costs make's walk of it, 6-8 s).
if [ -z "${BARMAP_REFRESH:-}" ] && [ -f "$KENV" ] && [ "$KENV" -nt "$fragment" ] &&
	[ "$KENV" -nt "$0" ] && [ -f "$build/arch/x86/boot/bzImage" ]; then
	say "cached: $(sed -n 's/^KVER=//p' "$KENV")"
	exit 0
fi
"$top/scripts/deps.sh" kernel-debug
fetch
configure
jobs=$(nproc)
say "building (make -j$jobs bzImage modules; the first build is slow)"
start=$(date +%s)
make -C "$src" O="$build" -j"$jobs" LOCALVERSION=-barmap-debug bzImage modules \
	>"$base/build.log" 2>&1 ||
	{ grep -E 'error|Error' -A3 "$base/build.log" | head -n 40 >&2; say "build failed, log: $base/build.log"; exit 1; }
kver=$(make -s -C "$src" O="$build" LOCALVERSION=-barmap-debug kernelrelease)
rm -rf "$base/mod"
make -s -C "$src" O="$build" LOCALVERSION=-barmap-debug INSTALL_MOD_PATH="$base/mod" \
	modules_install >/dev/null
say "built $kver in $(($(date +%s) - start)) s"
# VMLINUX is left empty: the harness boots the bzImage.  A KASAN kernel entered
# through PVH dies before its first console byte (the PVH entry's C code runs
# before the KASAN shadow exists; measured on 6.1.176), and the bzImage's
# decompressor is a small part of this kernel's boot anyway.
# APPEND (the harness adds it to the kernel command line): acpi=noirq routes INTx
# through the BIOS's $PIR table, not ACPI's _PRT.  QEMU's pc DSDT builds _PRT in a
# 128-step AML loop; under KASAN + lockdep + TCG its evaluation, at every
# pci_enable_device() and pci_disable_device(), took 10.6 s (insmod barmap: 10.66 s,
# 0.11 s with acpi=noirq; measured on 6.1.187).  ACPI hot-plug and the SCI stay.
cat >"$KENV" <<EOV
KVER=$kver
VMLINUZ=$build/arch/x86/boot/bzImage
VMLINUX=
KDIR=$build
MODDIR=$base/mod/lib/modules/$kver
APPEND=acpi=noirq
EOV
