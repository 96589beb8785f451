#!/usr/bin/env bash
# Fetch the distribution's current kernel (image, headers, kbuild) into the cache, no root install.
#
#   [GUEST_ARCH=arm64] scripts/kernel.sh [SUITE [FLAVOR]]
#                                         SUITE: bookworm (6.1, default) or trixie (6.12)
#                                         FLAVOR: distro (default) or debug (kernel-debug.sh)
#
# The ABI is resolved from the linux-image-amd64 (arm64) metapackage each time the
# package lists are refreshed, so a rolled ABI is followed, never pinned.
# arm64: the arm64 image and headers with this host's (amd64) linux-kbuild, whose
# fixdep and modpost run here; the module is cross-built (aarch64-linux-gnu-).
# Result: KERNEL_DIR (scripts/paths.sh):
#   root/        the unpacked packages (boot/vmlinuz-*, lib/modules/*, usr/src/*)
#   vmlinux-KVER the uncompressed ELF kernel, when it has a PVH entry (booted directly:
#                no emulated decompressor; harness/barmap/build/vmlinux.py)
#   kernel.env   KVER=... VMLINUZ=... VMLINUX=... KDIR=... MODDIR=...  (sourced by make and
#                the harness; VMLINUX is empty for a kernel without PVH)
#   Image-KVER   arm64: the uncompressed arm64 Image (what -kernel boots: the package's
#                vmlinuz is gzip, or an EFI zboot image that QEMU 7.2 cannot load),
#                IMAGE=... in kernel.env; ARCH=arm64 there too
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# the debug flavor is built from source: scripts/kernel-debug.sh
[ "${2:-distro}" = debug ] && exec "$top/scripts/kernel-debug.sh" "${1:-}"
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --kernel-suite "${1:-}" --kernel-flavor distro
suite=$KERNEL_SUITE
base=$KERNEL_DIR
env=$KENV

say() { printf 'barmap kernel[%s]: %s\n' "$suite" "$*" >&2; }

# The ELF vmlinux of $vmlinuz for direct PVH boot, extracted once per kernel:
# prints its path, or nothing for a kernel without a PVH entry.
pvh_vmlinux() {
	local out=$base/vmlinux-$kver rc=0
	[ -f "$out" ] && { echo "$out"; return 0; }
	python3 "$top/harness/barmap/build/vmlinux.py" "$vmlinuz" "$out" >&2 || rc=$?
	case $rc in
	0) echo "$out" ;;
	3) say "no PVH entry: the harness boots the bzImage" ;;
	*) exit "$rc" ;;
	esac
}

# arm64: the uncompressed Image of $vmlinuz (scripts/arm64-image.py)
arm64_image() {
	local out=$base/Image-$kver
	[ -f "$out" ] || python3 "$top/scripts/arm64-image.py" "$vmlinuz" "$out" >&2
	echo "$out"
}

write_env() {
	local vmlinux='' image=''
	if [ "$DEB_ARCH" = amd64 ]; then
		vmlinux=$(pvh_vmlinux)
		find "$base" -maxdepth 1 -name 'vmlinux-*' ! -name "vmlinux-$kver" -delete
	else
		image=$(arm64_image)
		find "$base" -maxdepth 1 -name 'Image-*' ! -name "Image-$kver" -delete
	fi
	cat >"$env" <<EOV
KVER=$kver
VMLINUZ=$vmlinuz
VMLINUX=$vmlinux
KDIR=$kdir
MODDIR=$moddir
EOV
	[ -z "$image" ] || printf 'IMAGE=%s\nARCH=arm64\n' "$image" >>"$env"
}

# The guest's packages: PKG:arm64 in the arm64 state (its bare names are the host's)
qual=
archopt=()
if [ "$DEB_ARCH" != amd64 ]; then
	qual=:$DEB_ARCH
	archopt=(--arch "$DEB_ARCH")
fi

# Resolve the suite's current kernel ABI from the linux-image-$DEB_ARCH metapackage
# (main, -updates and -security: harness/barmap/build/apt.py): sets image, kver.
resolve() {
	barmap_apt state "$base/apt" "$suite" "${archopt[@]}" >/dev/null || exit 1
	barmap_apt update "$base/apt" || return 1
	# linux-image-amd64 -> linux-image-<ABI>-amd64
	image=$(barmap_apt depends "$base/apt" "linux-image-$DEB_ARCH$qual" --prefix linux-image- |
		grep -m1 '^linux-image-[0-9]') || return 1
	kver=${image#linux-image-}
	touch "$base/apt/resolved"
}

# A cached kernel is kept while it is the suite's current one.  The archive is
# asked again when the last answer is older than BARMAP_KERNEL_RECHECK minutes
# (default a day; 0: every time) or with BARMAP_REFRESH=1; a newer ABI is then
# fetched, and an archive that cannot be reached keeps the cached kernel.
recheck=${BARMAP_KERNEL_RECHECK:-1440}
if [ -f "$env" ] && [ -z "${BARMAP_REFRESH:-}" ]; then
	# shellcheck disable=SC1090
	. "$env"
	# shellcheck disable=SC2153 # KVER, VMLINUZ, KDIR, MODDIR come from $env
	if [ -f "$VMLINUZ" ] && [ -f "$KDIR/Makefile" ]; then
		# a cache from before PVH boot: add the vmlinux
		if ! grep -q "^VMLINUX=" "$env" || { [ -n "${VMLINUX:-}" ] && [ ! -f "$VMLINUX" ]; } ||
			{ [ -n "${IMAGE:-}" ] && [ ! -f "$IMAGE" ]; }; then
			# shellcheck disable=SC2153
			kver=$KVER vmlinuz=$VMLINUZ kdir=$KDIR moddir=$MODDIR
			write_env
		fi
		if [ -n "$(find "$base/apt/resolved" -mmin "-$recheck" 2>/dev/null)" ]; then
			say "cached: $KVER"
			exit 0
		fi
		if ! resolve; then
			say "cannot ask the archive for $suite's current kernel (the line above): keeping $KVER"
			exit 0
		fi
		if [ "$kver" = "$KVER" ]; then
			say "cached: $KVER (the current one)"
			exit 0
		fi
		say "$suite's kernel moved from $KVER to $kver: fetching it"
	fi
fi

if [ -z "${kver:-}" ] && ! resolve; then
	say "cannot resolve $suite's linux-image-$DEB_ARCH (the line above)"
	exit 1
fi
# the headers' -common (Architecture: all) and linux-kbuild: bare names, so the host's
# kbuild (its fixdep and modpost run here)
headers_deps=$(barmap_apt depends "$base/apt" "linux-headers-$kver$qual" --prefix linux- |
	grep -E '^linux-(headers|kbuild)-' | sort -u)
pkgs="$image$qual linux-headers-$kver$qual $headers_deps"
say "kernel $kver: ${pkgs//$'\n'/ }"

rm -rf "$base/debs" "$base/root.new"
mkdir -p "$base/debs" "$base/root.new"
# shellcheck disable=SC2086
barmap_apt download "$base/apt" $pkgs --to "$base/debs" >/dev/null
for deb in "$base"/debs/*.deb; do
	dpkg-deb -x "$deb" "$base/root.new"
done
root=$base/root.new
kdir=$root/usr/src/linux-headers-$kver
# The headers' Makefile includes the -common tree by absolute path, and the
# scripts/tools symlinks point into /usr/lib/linux-kbuild-*: re-root both.
sed -i "s|include /usr/src/|include $base/root/usr/src/|" "$kdir/Makefile"
for link in "$kdir"/scripts "$kdir"/tools "$root"/usr/src/linux-headers-*-common/scripts \
	"$root"/usr/src/linux-headers-*-common/tools; do
	[ -L "$link" ] || continue
	target=$(readlink "$link")
	case $target in
	/*) ln -sfn "$base/root$target" "$link" ;;
	esac
done

# The kbuild host programs (modpost, objtool, ...) of a newer release may need
# a newer glibc than this host has (Debian 13's need 2.38, Debian 12 has 2.36).
# Then that release's C library is unpacked beside them and each such program
# is run through its dynamic loader by a small wrapper.
glibc_of() { objdump -T "$1" 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -n1; }
host_glibc=GLIBC_$(ldd --version | awk 'NR==1{print $NF}')
newer=()
while IFS= read -r -d '' f; do
	head -c4 "$f" | grep -q ELF || continue
	need=$(glibc_of "$f")
	[ -n "$need" ] || continue
	[ "$(printf '%s\n%s\n' "$need" "$host_glibc" | sort -V | tail -n1)" = "$host_glibc" ] && continue
	newer+=("$f")
done < <(find "$root"/usr/lib/linux-kbuild-* -type f -perm -u+x -print0)
if [ ${#newer[@]} -gt 0 ]; then
	say "${#newer[@]} kbuild programs need a newer glibc than $host_glibc: using $suite's"
	barmap_apt download "$base/apt" libc6 libelf1t64 zlib1g libzstd1 --to "$base/debs" >/dev/null
	mkdir -p "$root/hostlibs"
	for deb in "$base"/debs/libc6_*.deb "$base"/debs/libelf*.deb "$base"/debs/zlib1g_*.deb \
		"$base"/debs/libzstd1_*.deb; do
		dpkg-deb -x "$deb" "$root/hostlibs"
	done
	libs="$base/root/hostlibs/usr/lib/x86_64-linux-gnu:$base/root/hostlibs/lib/x86_64-linux-gnu"
	for f in "${newer[@]}"; do
		mv "$f" "$f.glibc-bin"
		real=${f#"$root"}
		cat >"$f" <<EOW
#!/bin/sh
exec $base/root/hostlibs/usr/lib64/ld-linux-x86-64.so.2 --library-path $libs $base/root$real.glibc-bin "\$@"
EOW
		chmod +x "$f"
	done
fi
rm -rf "$base/root" "$base/debs"
mv "$root" "$base/root"
root=$base/root
vmlinuz=$(ls "$root"/boot/vmlinuz-"$kver")
moddir=$root/lib/modules/$kver
[ -d "$moddir" ] || moddir=$root/usr/lib/modules/$kver # merged /usr (Debian 13)
kdir=$root/usr/src/linux-headers-$kver
write_env
say "unpacked into $root"
cat "$env"
