#!/usr/bin/env bash
# Build qemu-system-x86_64 (or, with GUEST_ARCH=arm64, qemu-system-aarch64) with the
# barmap device from the distribution's QEMU source.
#
#   [GUEST_ARCH=arm64] scripts/qemu.sh [SUITE [FLAVOR]]
#
#   SUITE: bookworm (QEMU 7.2, default) or trixie (QEMU 10.0)
#   FLAVOR: plain (default); asan (ASan + UBSan, gcc); fuzz (clang, libFuzzer,
#           ASan + UBSan: qemu-fuzz-x86_64 with barmap's generic-fuzz targets)
#
# Everything heavy lives in the cache, in QEMU_DIR (scripts/paths.sh):
#   QEMU_DIR/apt     private apt state (harness/barmap/build/apt.py)
#   QEMU_DIR/src     the qemu source package, Debian's patches applied
#   QEMU_DIR/build   the build (build-asan, build-fuzz for the other flavors);
#                    the binary is QEMU_BIN.  arm64: build-aarch64 (build-aarch64-asan)
#                    from the same src; on virt the device comes with TEST_DEVICES,
#                    which ARM_VIRT implies, as q35 and pc do
# qemu-device/patches/SUITE/*.patch are applied to src (patch_qemu).
# The device is copied into src/hw/misc (only files whose content changed, so
# ninja rebuilds just barmap.o) and hooked into hw/misc/{Kconfig,meson.build,trace-events}.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --qemu-suite "${1:-}" --qemu-flavor "${2:-}"
suite=$QEMU_SUITE
flavor=$QEMU_FLAVOR
base=$QEMU_DIR
src=$base/src
build=$QEMU_BUILD

tag=$suite
[ "$flavor" = plain ] || tag="$suite $flavor"
[ "$QEMU_TARGET" = x86_64 ] || tag="$tag $QEMU_TARGET"

say() { printf 'barmap qemu[%s]: %s\n' "$tag" "$*" >&2; }

fetch() {
	[ -f "$src/.barmap-fetched" ] && return 0
	say "fetching the QEMU source package (private apt state)"
	local got
	barmap_apt state "$base/apt" "$suite" >/dev/null
	barmap_apt update "$base/apt"
	rm -rf "$base/dl" "$src"
	got=$(barmap_apt source "$base/apt" qemu --to "$base/dl")
	mv "${got#* }" "$src"
	rm -rf "$base/dl"
	touch "$src/.barmap-fetched"
}

# barmap's own fixes to QEMU's core: qemu-device/patches/SUITE/*.patch, each a
# fix that suite's QEMU lacks.  What was applied is kept in src/.barmap-patches,
# so a patch that changed or went away is reverted first; ninja then rebuilds
# only the files a patch touches.
patch_qemu() {
	local want=$top/qemu-device/patches/$suite have=$src/.barmap-patches p name
	mkdir -p "$have"
	for p in $(find "$have" -name '*.patch' | sort -r); do
		name=$(basename "$p")
		cmp -s "$p" "$want/$name" && continue
		say "reverting $name"
		patch -d "$src" -p1 -R -s <"$p" || { say "cannot revert $name"; exit 1; }
		rm -f "$p"
	done
	for p in $(find "$want" -name '*.patch' 2>/dev/null | sort); do
		name=$(basename "$p")
		[ -e "$have/$name" ] && continue
		say "applying $name"
		patch -d "$src" -p1 -N -s <"$p" || { say "$name does not apply to $src"; exit 1; }
		cp "$p" "$have/$name"
	done
}

# Replace the text between "# barmap begin" and "# barmap end" in FILE with STDIN.
hook() {
	local file=$1 block tmp
	block=$(cat)
	tmp=$(mktemp)
	awk '/^# barmap begin/{skip=1} !skip{print} /^# barmap end/{skip=0}' "$file" >"$tmp"
	printf '# barmap begin\n%s\n# barmap end\n' "$block" >>"$tmp"
	if ! cmp -s "$tmp" "$file"; then cat "$tmp" >"$file"; fi
	rm -f "$tmp"
}

copy_if_changed() {
	cmp -s "$1" "$2" || cp "$1" "$2"
}

integrate() {
	local misc=$src/hw/misc ss=system_ss
	grep -q 'softmmu_ss' "$misc/meson.build" && ss=softmmu_ss
	copy_if_changed "$top/qemu-device/barmap.c" "$misc/barmap.c"
	copy_if_changed "$top/include/barmap_regs.h" "$misc/barmap_regs.h"
	copy_if_changed "$top/qemu-device/barmap-compat.h" "$misc/barmap-compat.h"
	hook "$misc/meson.build" <<<"$ss.add(when: 'CONFIG_BARMAP', if_true: files('barmap.c'))"
	hook "$misc/Kconfig" <<<"config BARMAP
    bool
    default y if TEST_DEVICES
    depends on PCI && MSI_NONBROKEN"
	hook "$misc/trace-events" <"$top/qemu-device/trace-events"
	# generic-fuzz targets (only the fuzz flavor compiles them)
	local fuzz=$src/tests/qtest/fuzz
	copy_if_changed "$top/qemu-device/fuzz/generic_fuzz_barmap.h" "$fuzz/generic_fuzz_barmap.h"
	grep -q '#include "generic_fuzz_barmap.h"' "$fuzz/generic_fuzz_configs.h" ||
		sed -i '/^const generic_fuzz_config predefined_configs\[\] = {/a #include "generic_fuzz_barmap.h"' \
			"$fuzz/generic_fuzz_configs.h"
	grep -q '#include "generic_fuzz_barmap.h"' "$fuzz/generic_fuzz_configs.h" ||
		{ say "cannot hook barmap into $fuzz/generic_fuzz_configs.h"; exit 1; }
}

# QEMU >= 8.1 configures through a venv that needs the meson pinned in
# pythondeps.toml; Debian's source package drops the vendored wheels
# (python/wheels), and bookworm's meson is too old for QEMU 10, so give
# configure a private Python that has that meson (pip, from PyPI).
host_python() {
	local pin py=$base/pyhost/bin/python3
	[ -f "$src/pythondeps.toml" ] || return 0
	compgen -G "$src/python/wheels/meson-*.whl" >/dev/null && return 0
	pin=$(sed -n 's/^meson *= *{.*installed *= *"\([^"]*\)".*/\1/p' "$src/pythondeps.toml")
	if ! "$py" -c 'import mesonbuild' 2>/dev/null; then
		say "installing meson ${pin:-latest} for configure into $base/pyhost"
		/usr/bin/python3 -m venv "$base/pyhost"
		"$py" -m pip install -q "meson${pin:+==$pin}" >&2
	fi
	echo "--python=$py"
}

configure() {
	[ -f "$build/build.ninja" ] && return 0
	say "configuring ($QEMU_TARGET-softmmu, minimal features)"
	local pyopt extra=()
	pyopt=$(host_python)
	# ASan + UBSan: one configure switch up to QEMU 8.0, two meson options after
	local san=(--enable-sanitizers)
	grep -q "^option('asan'" "$src/meson_options.txt" && san=(--enable-asan --enable-ubsan)
	case $flavor in
	asan) extra=("${san[@]}") ;;
	fuzz) extra=(--cc=clang-14 --cxx=clang++-14 --enable-fuzzing "${san[@]}") ;;
	esac
	# KVM runs a guest of the host's own architecture only
	local kvm=--enable-kvm
	[ "$QEMU_TARGET" = "$(uname -m)" ] || kvm=--disable-kvm
	mkdir -p "$build"
	# shellcheck disable=SC2086
	(cd "$build" && "$src/configure" $pyopt "${extra[@]}" --target-list="$QEMU_TARGET-softmmu" \
		--firmwarepath="${FIRMWARE_DIRS// /:}" \
		--without-default-features --enable-slirp $kvm --enable-tcg \
		--enable-fdt=system --disable-install-blobs --disable-docs \
		--disable-werror >"$build/configure.log" 2>&1) ||
		{ tail -n 30 "$build/configure.log" >&2; exit 1; }
}

# QEMU run from its build directory looks for the --firmwarepath directories
# under build/qemu-bundle (where meson stages an install): point them at the
# real ones, so the binary finds its firmware without -L (the fuzzer's fixed
# command line, a user running it by hand or under gdb).
stage_firmware() {
	local dir
	for dir in $FIRMWARE_DIRS; do
		mkdir -p "$build/qemu-bundle$(dirname "$dir")"
		ln -sfn "$dir" "$build/qemu-bundle$dir"
	done
}

fetch
patch_qemu
integrate
configure
stage_firmware
say "building (ninja $(basename "$QEMU_BIN"))"
start=$(date +%s)
ninja -C "$build" "$(basename "$QEMU_BIN")" >"$build/ninja.log" 2>&1 ||
	{ grep -E 'error|Error' -A3 "$build/ninja.log" | head -n 60 >&2; say "build failed, log: $build/ninja.log"; exit 1; }
say "built $QEMU_BIN in $(($(date +%s) - start)) s"
