#!/usr/bin/env bash
# The arm64 guest's userland from Debian's arm64 packages, unpacked (never installed):
# busybox-static, and dropbear with the libraries it links (the SSH piece).
#
#   GUEST_ARCH=arm64 images/arm64-userland.sh [SUITE]    prints the root: KERNEL_DIR/userland
#
# Uses the kernel's private apt state (scripts/kernel.sh made it with arm64 in it).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --kernel-suite "${1:-}"
apt=$KERNEL_DIR/apt root=$KERNEL_DIR/userland
say() { printf 'barmap userland[%s %s]: %s\n' "$KERNEL_SUITE" "$DEB_ARCH" "$*" >&2; }
[ -f "$apt/apt-opts" ] || { say "no apt state in $apt: run make kernel GUEST_ARCH=$GUEST_ARCH first"; exit 1; }
if [ ! -f "$root/.barmap-done" ]; then
	# dropbear's libraries, two levels down (libtomcrypt pulls libtommath and libgmp)
	libs=$(barmap_apt depends "$apt" "dropbear-bin:$DEB_ARCH" | grep -E '^(lib|zlib)')
	for l in $libs; do
		libs="$libs $(barmap_apt depends "$apt" "$l:$DEB_ARCH" | grep -E '^(lib|zlib)' || true)"
	done
	# shellcheck disable=SC2086 # one name a word
	pkgs="busybox-static dropbear-bin $(printf '%s\n' $libs | sort -u)"
	say "unpacking ${pkgs//$'\n'/ }"
	rm -rf "$root" "$root.debs"
	# shellcheck disable=SC2046,SC2086 # one name a word
	barmap_apt download "$apt" $(printf "%s:$DEB_ARCH " $pkgs) --to "$root.debs" >/dev/null
	mkdir -p "$root"
	for deb in "$root.debs"/*.deb; do
		dpkg-deb -x "$deb" "$root"
	done
	rm -rf "$root.debs"
	touch "$root/.barmap-done"
fi
echo "$root"
