#!/usr/bin/env bash
# The CI caches' keys and paths: what each heavy artifact depends on, in one place.
#
#   scripts/cache-keys.sh QEMU_SUITE QEMU_FLAVOR KERNEL_SUITE [KERNEL_FLAVOR] >>"$GITHUB_OUTPUT"
#
# Prints, as GitHub step outputs (name=value; paths as name<<EOF blocks):
#   qemu-key, qemu-restore, qemu-paths   QEMU's source tree and the flavor's build
#       directory.  The key holds the host release (the build links its libraries),
#       the Debian source version, a hash of the scripts that build it and of
#       qemu-device/patches, then a hash of the device source.  qemu-restore is the
#       key without that last part: after a device edit the previous build is
#       restored and ninja rebuilds barmap.o, not QEMU.
#   kernel-key, kernel-paths             the unpacked kernel packages: host release,
#       the suite's current kernel ABI, a hash of the scripts that fetch it.  For
#       KERNEL_FLAVOR=debug, the debug kernel's source and build tree instead: the
#       linux source version, kernel-debug.sh and images/debug-kernel.config.
#   checkpatch-key, checkpatch-paths     checkpatch.pl from linux-source (make lint).
# With GUEST_ARCH=arm64 the same for the aarch64 QEMU and the arm64 kernel (their own
# keys and paths: scripts/paths.sh).
# The versions come from the archive now (a private apt state in
# BARMAP_CACHE/ci-keys, not itself cached), so a Debian update changes the key.
# Every cached path sits under BARMAP_CACHE and must be restored at the same
# path: the caches hold absolute paths.  kvm-probe.json is not in any of them
# (it describes one machine).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 3 ] || [ $# -eq 4 ] || { sed -n '2,4p' "$0" >&2; exit 2; }
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --qemu-suite "$1" --qemu-flavor "$2" --kernel-suite "$3" \
	--kernel-flavor "${4:-}"

host=$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')
hash_of() { (cd "$top" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }

# the suite's versions, from the archive
apt_query() {
	local suite=$1 state=$BARMAP_CACHE/ci-keys/$1-$DEB_ARCH
	barmap_apt state "$state" "$suite" --arch "$DEB_ARCH" >/dev/null || exit 1
	barmap_apt update "$state" || exit 1
	echo "$state"
}
state=$(apt_query "$QEMU_SUITE")
qemu_version=$(barmap_apt srcversion "$state" qemu) || exit 1
state=$(apt_query "$KERNEL_SUITE")
kernel_abi=$(barmap_apt depends "$state" "linux-image-$DEB_ARCH:$DEB_ARCH" --prefix linux-image- |
	sed -n 's/^linux-image-\([0-9]\)/\1/p' | head -n1) || exit 1
if [ -z "$qemu_version" ] || [ -z "$kernel_abi" ]; then
	echo "cache-keys: cannot resolve qemu ($qemu_version) or the kernel ABI ($kernel_abi)" >&2
	exit 1
fi

qemu_scripts=$(hash_of scripts/qemu.sh harness/barmap/build/apt.py scripts/paths.sh harness/barmap/build/paths.py \
	qemu-device/patches)
device=$(hash_of qemu-device include/barmap_regs.h)
kernel_scripts=$(hash_of scripts/kernel.sh harness/barmap/build/apt.py scripts/paths.sh \
	harness/barmap/build/paths.py harness/barmap/build/vmlinux.py)
checkpatch_script=$(hash_of scripts/checkpatch.sh)

if [ "$KERNEL_FLAVOR" = debug ]; then
	linux_version=$(barmap_apt srcversion "$state" linux) || exit 1
	debug_scripts=$(hash_of scripts/kernel-debug.sh harness/barmap/build/apt.py scripts/paths.sh \
		harness/barmap/build/paths.py images/debug-kernel.config)
	kernel_cache="kernel-key=barmap-kernel-debug-$host-$KERNEL_SUITE-${linux_version//[:~+]/_}-$debug_scripts
kernel-paths<<BARMAP_EOF
$KERNEL_DIR/debug
!$KERNEL_DIR/debug/dl
BARMAP_EOF"
else
	kernel_cache="kernel-key=barmap-kernel-$host-$KERNEL_SUITE-$kernel_abi-$kernel_scripts
kernel-paths<<BARMAP_EOF
$KERNEL_DIR
!$KERNEL_DIR/debug
BARMAP_EOF"
fi

# GUEST_ARCH=arm64: its own keys (the aarch64 build directory, the arm64 kernel)
target=
[ "$QEMU_TARGET" = x86_64 ] || target=-$QEMU_TARGET
qemu_restore="barmap-qemu-$host-$QEMU_SUITE-$QEMU_FLAVOR$target-${qemu_version//[:~+]/_}-$qemu_scripts-"
cat <<EOF
qemu-key=$qemu_restore$device
qemu-restore=$qemu_restore
qemu-paths<<BARMAP_EOF
$QEMU_DIR/src
$QEMU_BUILD
$QEMU_DIR/pyhost
BARMAP_EOF
$kernel_cache
checkpatch-key=barmap-checkpatch-$KERNEL_SUITE-$kernel_abi-$checkpatch_script
checkpatch-paths<<BARMAP_EOF
$CHECKPATCH_DIR
BARMAP_EOF
EOF
