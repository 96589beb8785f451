#!/usr/bin/env bash
# Install the Debian packages barmap needs, if any is missing (as root, or with sudo).
#
#   scripts/deps.sh [GROUP...]   also: fuzz (clang, libFuzzer: make fuzz);
#                                kernel-debug (what building a kernel needs: KERNEL_FLAVOR=debug)
set -euo pipefail
pkgs=(
	# building QEMU from the distribution's source
	build-essential dpkg-dev ninja-build meson pkg-config flex bison
	libglib2.0-dev libpixman-1-dev libslirp-dev libfdt-dev
	# firmware for the built QEMU (-L)
	seabios qemu-system-data ipxe-qemu
	# the guest image and the guest's SSH server; the kernels' payloads and modules
	# (Debian 13's 6.12 is ZSTD-compressed, its modules .ko.xz or .ko.zst)
	busybox-static cpio dropbear-bin xz-utils zstd
	# kernel module checks (C=1), shell script checks (make lint), the harness's venv,
	# interactive debugging
	sparse shellcheck python3-venv gdb tmux
)
for group in "$@"; do
	case $group in
	# the fuzz flavor of QEMU: clang with libFuzzer and the sanitizer runtimes, and
	# llvm-symbolizer for readable reports
	fuzz) pkgs+=(clang-14 libclang-rt-14-dev llvm-14) ;;
	kernel-debug) pkgs+=(bc libelf-dev libssl-dev kmod) ;;
	*) echo "barmap deps: unknown group '$group' (fuzz, kernel-debug)" >&2; exit 2 ;;
	esac
done
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "barmap deps: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# apt's own output stays visible: a failed install must leave its reason in a CI log
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
