#!/usr/bin/env bash
# Install the Debian packages barmap needs, if any is missing (as root, or with sudo).
#
#   scripts/deps.sh [GROUP...]   also: fuzz (clang, libFuzzer: make fuzz);
#                                kernel-debug (what building a kernel needs: KERNEL_FLAVOR=debug);
#                                act (Docker, mmdebstrap, git: scripts/act-local.sh);
#                                arm64 (the cross compiler and dtc: GUEST_ARCH=arm64)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

# Debian's packages and archive are what barmap builds from: on another host say
# so now (harness/barmap/build/apt.py holds the message and the explicit-mirror way
# out), not deep inside apt.
os_id=$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"')
if [ "$os_id" != debian ] && [ -z "${BARMAP_DEBIAN_MIRROR:-}" ]; then
	command -v python3 >/dev/null ||
		{ echo "barmap deps: this host is '${os_id:-unknown}', not Debian: run barmap on Debian 12/13 or in a Debian container" >&2; exit 1; }
	python3 "$top/harness/barmap/build/apt.py" --sources bookworm >/dev/null || exit 1
fi
command -v apt-get >/dev/null ||
	{ echo "barmap deps: no apt-get here: barmap installs its build tools with apt (Debian 12/13, or a Debian container)" >&2; exit 1; }

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
	# the guest's SSH: per-run keys (ssh-keygen) and `barmap ssh` sessions
	openssh-client
	# module BTF (pahole), which kbuild makes when the host's gcc is the kernel's (a
	# Debian 13 host building for Debian 13's 6.12)
	dwarves
)
for group in "$@"; do
	case $group in
	# the fuzz flavor of QEMU: clang with libFuzzer and the sanitizer runtimes, and
	# llvm-symbolizer for readable reports
	fuzz) pkgs+=(clang-14 libclang-rt-14-dev llvm-14) ;;
	kernel-debug) pkgs+=(bc libelf-dev libssl-dev kmod) ;;
	# scripts/act-local.sh: the pipeline's jobs under act, in Docker containers of images
	# made here (mmdebstrap); git for the clean clone act runs on
	act) pkgs+=(docker.io mmdebstrap git) ;;
	# GUEST_ARCH=arm64: the module and the static tools cross-built (gcc and an arm64
	# libc to link against), the guest's device tree edited (dtc)
	arm64) pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross device-tree-compiler) ;;
	*) echo "barmap deps: unknown group '$group' (fuzz, kernel-debug, act, arm64)" >&2; exit 2 ;;
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
