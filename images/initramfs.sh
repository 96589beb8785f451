#!/usr/bin/env bash
# Build the guest initramfs: busybox-static, the barmap module and guest tools.
#
#   images/initramfs.sh OUT.cpio KO TOOLDIR [MODDIR]
#
# KO is the built barmap.ko (may be absent: the image then has no module);
# TOOLDIR holds the static guest tools (barmap-check); MODDIR is the guest
# kernel's /lib/modules/VERSION, from which the few modules the guest needs
# (e1000 for SSH, pvpanic) are taken, decompressed.  Dropbear is added when its
# package is installed, for the harness's SSH access; the harness appends the
# per-run keys as a second cpio archive.
set -euo pipefail
out=$1 ko=$2 tooldir=$3 moddir=${4:-}
extra_modules="drivers/misc/pvpanic/pvpanic drivers/misc/pvpanic/pvpanic-mmio
drivers/net/ethernet/intel/e1000/e1000"
here=$(cd "$(dirname "$0")" && pwd)
busybox=$(command -v busybox || echo /bin/busybox)
# static: an ELF with no program interpreter (readelf is in binutils; `file` may be
# missing, as in a bare Debian root)
headers=$(readelf -lW "$busybox" 2>/dev/null) || headers="program interpreter (not an ELF)"
case $headers in
*"program interpreter"*)
	echo "initramfs: $busybox is not static: install busybox-static" >&2
	exit 1
	;;
esac

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,lib/modules,usr/bin,usr/sbin}
cp "$busybox" "$root/bin/busybox"
# every applet as /bin/NAME (what `busybox --install -s /bin` would make at each boot)
"$busybox" --list | while read -r applet; do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$here/init" "$root/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf '/bin/sh\n' >"$root/etc/shells"
printf 'export PS1="barmap# "\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n' >"$root/etc/profile"
[ -f "$ko" ] && install -m 0644 "$ko" "$root/lib/modules/barmap.ko"
if [ -n "$moddir" ]; then
	mkdir -p "$root/lib/modules/extra"
	: >"$root/lib/modules/extra/order.names"
	for m in $extra_modules; do
		f=$(find "$moddir/kernel/${m%/*}" -maxdepth 1 -name "${m##*/}.ko*" 2>/dev/null | head -n1 || true)
		# built into the kernel (the debug kernel): nothing to carry
		[ -z "$f" ] && grep -qx "kernel/$m.ko" "$moddir/modules.builtin" 2>/dev/null && continue
		[ -n "$f" ] || { echo "initramfs: $m not found in $moddir" >&2; exit 1; }
		dst=$root/lib/modules/extra/$(basename "$m").ko
		case $f in
		*.ko.xz) xz -dc "$f" >"$dst" ;;
		*.ko.zst) zstd -qdc "$f" >"$dst" ;;
		*.ko.gz) gzip -dc "$f" >"$dst" ;;
		*) cp "$f" "$dst" ;;
		esac
		echo "${m##*/}" >>"$root/lib/modules/extra/order.names"
	done
	# order: "MODULE PATTERN..." — init loads a module only when a device's modalias
	# matches one of its aliases (a library module takes its users' aliases), so a
	# guest without the NIC spends no boot time loading and verifying its driver.
	modinfo_of() { tr '\0' '\n' <"$root/lib/modules/extra/$1.ko" | sed -n "s/^$2=//p"; }
	while read -r m; do
		pats=$(modinfo_of "$m" alias)
		while read -r user; do
			case ",$(modinfo_of "$user" depends)," in
			*",$m,"*) pats="$pats $(modinfo_of "$user" alias)" ;;
			esac
		done <"$root/lib/modules/extra/order.names"
		line="$m $pats"
		echo "${line//$'\n'/ }" >>"$root/lib/modules/extra/order"
	done <"$root/lib/modules/extra/order.names"
	rm -f "$root/lib/modules/extra/order.names"
fi
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
# Uncompressed: QEMU hands it over at memory speed, and the guest does not
# spend ~0.15 s of emulated CPU inflating it at every boot (docs/performance.md).
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$out.tmp"
mv "$out.tmp" "$out"
echo "initramfs: $out ($(du -h "$out" | cut -f1))" >&2
