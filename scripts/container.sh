#!/usr/bin/env bash
# Run a command in a Debian container: how the make targets run on a host that is not Debian,
# and on any host with BARMAP_CONTAINER=docker|podman (Makefile; README, "Any Linux host").
#
#   scripts/container.sh COMMAND...      e.g. scripts/container.sh make test
#
# The image is debian:SUITE (BARMAP_CONTAINER_SUITE: bookworm, the default, or trixie;
# scripts/debian-image.sh) with every package of scripts/deps.sh installed, made again when
# deps.sh changes.  The tree and the cache (BARMAP_CACHE) are bound at their own paths, so
# the absolute paths in the cache hold on both sides; /dev/kvm is passed in when there is
# one; the command runs as the calling user (rootless podman: keep-id), so the files it
# writes are the caller's.  The knobs (BARMAP_*, the suites and flavors, make's own
# command-line variables) go in with it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "container: $*" >&2; exit 2; }
[ $# -gt 0 ] || die "usage: scripts/container.sh COMMAND..."
engine=${BARMAP_CONTAINER:-}
case $engine in
docker | podman) ;;
'' | auto) engine=$(command -v docker || command -v podman) || die "no docker or podman here" ;;
*) die "BARMAP_CONTAINER=$engine: docker or podman" ;;
esac
engine=${engine##*/}
command -v "$engine" >/dev/null || die "BARMAP_CONTAINER=$engine, but there is no $engine here"
suite=${BARMAP_CONTAINER_SUITE:-bookworm}
case $suite in bookworm | trixie) ;; *) die "BARMAP_CONTAINER_SUITE=$suite: bookworm or trixie" ;; esac
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --qemu-suite ""
cache=$BARMAP_CACHE
mkdir -p "$cache"

# the image: barmap's packages on the Debian base, as root once; the runs need no root
"$top/scripts/debian-image.sh" "$suite" "$engine"
image=barmap-dev:$suite-$(cat "$top/scripts/deps.sh" "$top/harness/barmap/build/apt.py" | sha256sum | cut -c1-12)
if ! "$engine" image inspect "$image" >/dev/null 2>&1; then
	echo "container: making $image (scripts/deps.sh fuzz kernel-debug)" >&2
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' EXIT
	cp "$top/scripts/deps.sh" "$top/harness/barmap/build/apt.py" "$ctx/"
	"$engine" build -q -t "$image" -f - "$ctx" >/dev/null <<-EOF
		FROM debian:$suite
		COPY deps.sh /opt/barmap/scripts/
		COPY apt.py /opt/barmap/harness/barmap/build/
		RUN /opt/barmap/scripts/deps.sh fuzz kernel-debug && rm -rf /var/lib/apt/lists/*
	EOF
	rm -rf "$ctx"
fi

name=barmap-$$
args=(--rm --init -i --name "$name" -v "$top:$top" -v "$cache:$cache" -w "$PWD"
	-e BARMAP_IN_CONTAINER=1 -e BARMAP_CACHE="$cache" -e HOME=/tmp)
[ ! -t 0 ] || [ ! -t 1 ] || args+=(-t)
if [ -e /dev/kvm ]; then
	args+=(--device /dev/kvm)
	[ "$(id -u)" -eq 0 ] || args+=(--group-add "$(stat -c %g /dev/kvm)")
fi
if [ "$engine" = podman ] && [ "$(id -u)" -ne 0 ]; then
	args+=(--userns=keep-id)  # rootless: the caller's uid inside is the caller's outside
else
	args+=(--user "$(id -u):$(id -g)")
fi
# make's command-line variables (MAKEFLAGS; its jobserver's descriptors do not cross) and the knobs
[ -z "${MAKEFLAGS:-}" ] || args+=(-e "MAKEFLAGS=$(tr ' ' '\n' <<<"$MAKEFLAGS" | grep -v '^--jobserver' | xargs)")
for v in $(compgen -e | grep -E '^(BARMAP_|QEMU_|KERNEL|KDIR$|ACCEL$|BOOT$|JOBS$|PYTEST_|RUNS$|TIME$|TARGET$|FUZZ_|CI$|TERM$)'); do
	case $v in BARMAP_CACHE | BARMAP_IN_CONTAINER) ;; *) args+=(-e "$v") ;; esac
done
# an interrupted run takes its container with it
trap '"$engine" rm -f "$name" >/dev/null 2>&1 || true; rm -rf "${ctx:-}"' EXIT
"$engine" run "${args[@]}" "$image" "$@"
