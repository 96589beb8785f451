#!/usr/bin/env bash
# Build the guest initramfs: busybox-static, the barmap module and guest tools.
#
#   images/initramfs.sh OUT.cpio.gz KO TOOLDIR
#
# KO is the built barmap.ko (may be absent: the image then has no module);
# TOOLDIR holds the static guest tools (barmap-check).  Dropbear is added when
# its package is installed, for the harness's SSH access.
set -euo pipefail
out=$1 ko=$2 tooldir=$3
here=$(cd "$(dirname "$0")" && pwd)
busybox=$(command -v busybox || echo /bin/busybox)
file "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$busybox" 2>&1 | grep -q 'not a dynamic' ||
	{ echo "initramfs: $busybox is not static: install busybox-static" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,lib/modules,usr/bin,usr/sbin}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$here/init" "$root/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'export PS1="barmap# "\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n' >"$root/etc/profile"
[ -f "$ko" ] && install -m 0644 "$ko" "$root/lib/modules/barmap.ko"
for tool in "$tooldir"/*; do
	[ -f "$tool" ] && [ -x "$tool" ] && install -m 0755 "$tool" "$root/usr/bin/"
done
if [ -x /usr/sbin/dropbear ]; then
	# dropbear and the libraries it links, so the harness can ssh in.
	install -m 0755 /usr/sbin/dropbear "$root/usr/sbin/dropbear"
	for lib in $(ldd /usr/sbin/dropbear | awk '/=>/{print $3} /ld-linux/{print $1}'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
	mkdir -p "$root/etc/dropbear"
fi
mkdir -p "$(dirname "$out")"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "initramfs: $out ($(du -h "$out" | cut -f1))" >&2
