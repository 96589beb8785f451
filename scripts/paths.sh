# shellcheck shell=bash
# Sourced by the scripts: every path and default, from harness/barmap/build/paths.py (their one
# source of truth; it needs only python3).
#
#   . scripts/paths.sh [--qemu-suite SUITE] [--kernel-suite SUITE]
#
# sets BARMAP_CACHE QEMU_SUITE KERNEL_SUITE QEMU_DIR QEMU_BIN KERNEL_DIR KENV
# CHECKPATCH_DIR OUT INITRD FIRMWARE_DIRS SUITES.  An empty SUITE means the default.
_barmap_paths=$(python3 "$(dirname "${BASH_SOURCE[0]}")/../harness/barmap/build/paths.py" --shell "$@") ||
	return 1
eval "$_barmap_paths"
unset _barmap_paths
