#!/usr/bin/env bash
# Build the guest initramfs: busybox-static, the barmap module and guest tools.
#
#   images/initramfs.sh OUT.cpio KO TOOLDIR [MODDIR]
#
# KO is the built barmap.ko (may be absent: the image then has no module);
# TOOLDIR holds the static guest tools (barmap-check); MODDIR is the guest
# kernel's /lib/modules/VERSION, from which the few modules the guest needs
# (e1000 for SSH, pvpanic) are taken, decompressed.  Dropbear, when its package
# is installed, goes to OUT-ssh.cpio: the harness adds it, and the per-run keys,
# as more cpio archives to the guests it starts with SSH.
# Another architecture's image (GUEST_ARCH=arm64): USERLAND is the root its busybox-static
# and dropbear come from (images/arm64-userland.sh), STRIP its strip.
set -euo pipefail
out=$1 ko=$2 tooldir=$3 moddir=${4:-}
extra_modules="drivers/misc/pvpanic/pvpanic drivers/misc/pvpanic/pvpanic-mmio
drivers/net/ethernet/intel/e1000/e1000"
# arm64: Debian builds no pvpanic there; virtio-pci is a module in 6.1 (built in, 6.12)
[ "${GUEST_ARCH:-x86_64}" = arm64 ] && extra_modules="drivers/virtio/virtio_pci_legacy_dev
drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/net/ethernet/intel/e1000/e1000"
userland=${USERLAND:-}
strip=${STRIP:-strip}
# loaded by whoever needs them (the atlas: vfio-pci's row, O_DIRECT on a RAM disk), never
# by init; one that a kernel lacks (vfio_virqfd went into vfio in 6.2) is left out
on_demand_modules="virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_virqfd
drivers/vfio/vfio_iommu_type1 drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci
drivers/block/brd"
here=$(cd "$(dirname "$0")" && pwd)
busybox=$(command -v busybox || echo /bin/busybox)
# (merged /usr, Debian 13: usr/bin/busybox)
if [ -n "$userland" ]; then
	busybox=$userland/bin/busybox
	[ -e "$busybox" ] || busybox=$userland/usr/bin/busybox
fi
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
# what init mounts with one `mount -a` (debugfs: the PAT memtype list, dynamic debug)
cat >"$root/etc/fstab" <<'EOF'
proc /proc proc defaults 0 0
sysfs /sys sysfs defaults 0 0
devtmpfs /dev devtmpfs defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
tmpfs /run tmpfs defaults 0 0
debugfs /sys/kernel/debug debugfs defaults 0 0
EOF
cp "$busybox" "$root/bin/busybox"
# every applet as /bin/NAME (what `busybox --install -s /bin` would make at each boot)
# (another architecture's busybox cannot run here: the host's busybox-static names them,
# Debian builds both from one configuration)
lister=$busybox
[ -z "$userland" ] || lister=$(command -v busybox || echo /bin/busybox)
"$lister" --list | while read -r applet; do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$here/init" "$root/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf '/bin/sh\n' >"$root/etc/shells"
printf 'export PS1="barmap# "\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n' >"$root/etc/profile"
# without its DWARF: gdb reads the build's own copy on the host, and every byte here is
# unpacked by the guest at each boot
if [ -f "$ko" ]; then
	install -m 0644 "$ko" "$root/lib/modules/barmap.ko"
	"$strip" --strip-debug "$root/lib/modules/barmap.ko"
fi
if [ -n "$moddir" ]; then
	mkdir -p "$root/lib/modules/extra"
	: >"$root/lib/modules/extra/order.names"
	# copy_module PATH: the kernel's module, uncompressed, into extra/ (1: not there)
	copy_module() {
		local f dst
		f=$(find "$moddir/kernel/${1%/*}" -maxdepth 1 -name "${1##*/}.ko*" 2>/dev/null | head -n1 || true)
		[ -n "$f" ] || return 1
		dst=$root/lib/modules/extra/$(basename "$1").ko
		case $f in
		*.ko.xz) xz -dc "$f" >"$dst" ;;
		*.ko.zst) zstd -qdc "$f" >"$dst" ;;
		*.ko.gz) gzip -dc "$f" >"$dst" ;;
		*) cp "$f" "$dst" ;;
		esac
	}
	for m in $extra_modules; do
		# built into the kernel (the debug kernel): nothing to carry
		[ -z "$(find "$moddir/kernel/${m%/*}" -maxdepth 1 -name "${m##*/}.ko*" 2>/dev/null)" ] &&
			grep -qx "kernel/$m.ko" "$moddir/modules.builtin" 2>/dev/null && continue
		copy_module "$m" || { echo "initramfs: $m not found in $moddir" >&2; exit 1; }
		echo "${m##*/}" >>"$root/lib/modules/extra/order.names"
	done
	for m in $on_demand_modules; do
		copy_module "$m" || true
	done
	# wanted.sh: init loads a module only when a device's modalias matches one of its
	# aliases (a library module takes its users' aliases), so a guest without the NIC
	# spends no boot time loading and verifying its driver.  The aliases become one
	# `case` per module, written here: matched by the shell in one pass over the
	# devices (a loop over every alias and device took 0.04 s of each boot under TCG).
	modinfo_of() { tr '\0' '\n' <"$root/lib/modules/extra/$1.ko" | sed -n "s/^$2=//p"; }
	wanted=$root/lib/modules/extra/wanted.sh
	{
		echo "# written by images/initramfs.sh from the modules' aliases: sets \$wanted to"
		echo "# the modules, in load order, that a device among the modaliases given needs"
		echo "wanted_modules() {"
		n=0
		while read -r m; do
			echo "	w$n="
			n=$((n + 1))
		done <"$root/lib/modules/extra/order.names"
		echo '	for a in "$@"; do'
		echo "		:"
		n=0
		while read -r m; do
			pats=$(modinfo_of "$m" alias)
			while read -r user; do
				case ",$(modinfo_of "$user" depends)," in
				*",$m,"*) pats="$pats $(modinfo_of "$user" alias)" ;;
				esac
			done <"$root/lib/modules/extra/order.names"
			alt=$(printf '%s\n' "$pats" | tr -s ' ' '\n' | sed '/^$/d' | paste -sd'|')
			# an alias is a glob over [A-Za-z0-9_:*?.,[]-]; anything else would be shell code
			if printf '%s' "$alt" | grep -q '[^][A-Za-z0-9_:*?.,|-]'; then
				echo "initramfs: $m has an alias this script cannot put in a case pattern" >&2
				exit 1
			fi
			# shellcheck disable=SC2016 # shell code for the guest
			[ -n "$alt" ] && printf '\t\tcase $a in %s) w%d=%s ;; esac\n' "$alt" "$n" "$m"
			n=$((n + 1))
		done <"$root/lib/modules/extra/order.names"
		echo "	done"
		printf '\twanted="'
		# shellcheck disable=SC2016 # shell code for the guest
		for ((i = 0; i < n; i++)); do printf '$w%d ' "$i"; done
		echo '"'
		echo "}"
	} >"$wanted"
	sh -n "$wanted"
	rm -f "$root/lib/modules/extra/order.names"
fi
for tool in "$tooldir"/*; do
	if [ -f "$tool" ] && [ -x "$tool" ]; then
		install -m 0755 "$tool" "$root/usr/bin/"
		"$strip" "$root/usr/bin/$(basename "$tool")"
	fi
done
mkdir -p "$(dirname "$out")"
# Uncompressed: QEMU hands it over at memory speed, and the guest does not
# spend ~0.15 s of emulated CPU inflating it at every boot (docs/performance.md).
pack() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$2.tmp" && mv "$2.tmp" "$2"; }
# SSH: dropbear and the libraries it links, in a piece of its own
# (harness/barmap/build/paths.py ssh_initrd) that the harness appends only to the
# guests it starts with SSH: half the image's bytes, unpacked at every boot otherwise.
ssh_out=${out%.cpio}-ssh.cpio
rm -f "$ssh_out"
dropbear=$userland/usr/sbin/dropbear
# the libraries of another architecture's dropbear: its loader and its NEEDED ones, theirs
# too (libtomcrypt pulls libtommath and libgmp), from USERLAND; each once
foreign_libs() {
	local lib found d elf seen=" " todo=$1
	readelf -lW "$1" | sed -n 's/.*program interpreter: \(.*\)]/\1/p'
	while [ -n "$todo" ]; do
		elf=${todo%% *}
		todo=${todo#"$elf"}
		todo=${todo# }
		for lib in $(readelf -dW "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			case $seen in *" $lib "*) continue ;; esac
			seen="$seen$lib "
			found=
			for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu; do
				[ -e "$userland/$d/$lib" ] && found=/$d/$lib && break
			done
			[ -n "$found" ] || { echo "initramfs: $lib (of $elf) is not in $userland" >&2; exit 1; }
			echo "$found"
			todo="$todo${todo:+ }$userland$found"
		done
	done
}
if [ -x "$dropbear" ]; then
	ssh=$(mktemp -d)
	trap 'rm -rf "$root" "$ssh"' EXIT
	mkdir -p "$ssh/usr/sbin" "$ssh/etc/dropbear" "$ssh/lib/modules/extra"
	install -m 0755 "$dropbear" "$ssh/usr/sbin/dropbear"
	# the NIC's driver too: only a guest with SSH has the NIC (init loads it by modalias)
	[ -f "$root/lib/modules/extra/e1000.ko" ] && mv "$root/lib/modules/extra/e1000.ko" "$ssh/lib/modules/extra/"
	if [ -n "$userland" ]; then
		for lib in $(foreign_libs "$dropbear"); do
			mkdir -p "$ssh$(dirname "$lib")"
			# merged /usr (Debian 13): /lib is usr/lib
			src=$userland$lib
			[ -e "$src" ] || src=$userland/usr$lib
			cp -L "$src" "$ssh$lib"
		done
	else
		for lib in $(ldd "$dropbear" | awk '/=>/{print $3} /ld-linux/{print $1}'); do
			mkdir -p "$ssh$(dirname "$lib")"
			cp -L "$lib" "$ssh$lib"
		done
	fi
	pack "$ssh" "$ssh_out"
	echo "initramfs: $ssh_out ($(du -h "$ssh_out" | cut -f1)), for guests with SSH" >&2
fi
pack "$root" "$out"
echo "initramfs: $out ($(du -h "$out" | cut -f1))" >&2
