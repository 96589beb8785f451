# shellcheck shell=bash
# Sourced by the scripts: every path and default, from harness/barmap/paths.py (their one
# source of truth; it needs only python3).
#
#   . scripts/paths.sh [--qemu-suite SUITE] [--kernel-suite SUITE]
#
# sets BARMAP_CACHE QEMU_SUITE KERNEL_SUITE QEMU_DIR QEMU_BIN KERNEL_DIR KENV
# CHECKPATCH_DIR OUT INITRD FIRMWARE_DIRS SUITES.  An empty SUITE means the default.
#
# GUEST_ARCH (environment; x86_64 by default, or arm64) also sets DEB_ARCH (amd64, arm64)
# and QEMU_TARGET (x86_64, aarch64); for arm64 the per-architecture paths are moved beside
# x86's (until harness/barmap/paths.py knows the architecture, this is their definition):
#   QEMU_BUILD  QEMU_DIR/build-aarch64 (build-aarch64-FLAVOR)   QEMU_BIN  .../qemu-system-aarch64
#   KERNEL_DIR  BARMAP_CACHE/kernel/SUITE-arm64                 KENV      KERNEL_DIR/kernel.env
#   OUT         build/SUITE-arm64                               INITRD    OUT/initramfs.cpio
# (QEMU_DIR, its apt state and source tree, is shared: one source builds both targets.)
BARMAP_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# the one private apt client: barmap_apt COMMAND ARGS... (harness/barmap/build/apt.py; a
# failure is one line naming its log, and status 1)
barmap_apt() { python3 "$BARMAP_TOP/harness/barmap/build/apt.py" "$@"; }
_barmap_paths=$(python3 "$(dirname "${BASH_SOURCE[0]}")/../harness/barmap/paths.py" --shell "$@") ||
	return 1
eval "$_barmap_paths"
unset _barmap_paths
GUEST_ARCH=${GUEST_ARCH:-x86_64}
# shellcheck disable=SC2034,SC2153 # set for the scripts that source this; QEMU_DIR came from eval
case $GUEST_ARCH in
x86_64) DEB_ARCH=amd64 QEMU_TARGET=x86_64 ;;
arm64)
	DEB_ARCH=arm64 QEMU_TARGET=aarch64
	[ "$KERNEL_FLAVOR" = distro ] ||
		{ echo "paths: GUEST_ARCH=arm64 has the distro kernel only, not KERNEL_FLAVOR=$KERNEL_FLAVOR" >&2; return 1; }
	[ "$QEMU_FLAVOR" != fuzz ] ||
		{ echo "paths: the fuzz flavor is x86_64 only" >&2; return 1; }
	QEMU_BUILD=$QEMU_DIR/build-aarch64
	[ "$QEMU_FLAVOR" = plain ] || QEMU_BUILD=$QEMU_BUILD-$QEMU_FLAVOR
	QEMU_BIN=$QEMU_BUILD/qemu-system-aarch64
	KERNEL_DIR=$BARMAP_CACHE/kernel/$KERNEL_SUITE-arm64
	KENV=$KERNEL_DIR/kernel.env
	OUT=${OUT%/*}/$KERNEL_SUITE-arm64
	INITRD=$OUT/initramfs.cpio
	;;
*)
	echo "paths: GUEST_ARCH=$GUEST_ARCH is not one of x86_64, arm64" >&2
	return 1
	;;
esac
