# shellcheck shell=bash
# Sourced by the scripts: every path and default, from harness/barmap/build/paths.py (their one
# source of truth; it needs only python3).
#
#   . scripts/paths.sh [--qemu-suite SUITE] [--kernel-suite SUITE]
#
# sets BARMAP_CACHE QEMU_SUITE KERNEL_SUITE QEMU_DIR QEMU_BIN KERNEL_DIR KENV
# CHECKPATCH_DIR OUT INITRD FIRMWARE_DIRS SUITES.  An empty SUITE means the default.
#
# GUEST_ARCH (environment; x86_64 by default, or arm64) also sets DEB_ARCH (amd64, arm64)
# and QEMU_TARGET (x86_64, aarch64), and moves arm64's QEMU build, kernel cache and images
# beside x86's (paths.py says where).
BARMAP_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# the one private apt client: barmap_apt COMMAND ARGS... (harness/barmap/build/apt.py; a
# failure is one line naming its log, and status 1)
barmap_apt() { python3 "$BARMAP_TOP/harness/barmap/build/apt.py" "$@"; }
_barmap_paths=$(python3 "$BARMAP_TOP/harness/barmap/build/paths.py" --shell \
	--guest-arch "${GUEST_ARCH:-}" "$@") ||
	return 1
eval "$_barmap_paths"
unset _barmap_paths
