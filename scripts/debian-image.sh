#!/usr/bin/env bash
# Make sure the container image debian:RELEASE is here and fit for barmap's containers (the
# act jobs of scripts/act-local.sh, the make targets of scripts/container.sh): node, which
# act runs JavaScript actions with (GitHub mounts its own), and this host's certificate
# authorities (a proxy's, for pip).  Pulled and extended when a registry answers, else made
# here with mmdebstrap from this host's Debian archive (harness/barmap/build/apt.py --sources).
#
#   scripts/debian-image.sh RELEASE [docker|podman]
#
# The image carries the label barmap.act=1; the mmdebstrap tarball is kept in
# BARMAP_CACHE/act/images, so a lost image is imported again in seconds.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
rel=${1:?usage: scripts/debian-image.sh RELEASE [docker|podman]} engine=${2:-docker}
ca=/usr/local/share/ca-certificates
pip_conf='[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n'
[ "$("$engine" image inspect -f '{{index .Config.Labels "barmap.act"}}' "debian:$rel" 2>/dev/null)" != 1 ] ||
	exit 0
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --qemu-suite ""
dir=$BARMAP_CACHE/act/images
tar=$dir/debian-$rel.tar
mkdir -p "$dir"

if [ ! -f "$tar" ] && "$engine" pull -q "debian:$rel" >/dev/null 2>&1; then
	echo "debian-image: adding node and this host's authorities to the pulled debian:$rel" >&2
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' EXIT
	mkdir "$ctx/ca"
	[ ! -d "$ca" ] || cp -r "$ca/." "$ctx/ca/"
	"$engine" build -q -t "debian:$rel" -f - "$ctx" >/dev/null <<-EOF
		FROM debian:$rel
		COPY ca/ $ca/
		RUN apt-get update -q && apt-get install -y -q --no-install-recommends nodejs ca-certificates \\
			&& update-ca-certificates && rm -rf /var/lib/apt/lists/* && printf '$pip_conf' >/etc/pip.conf
		LABEL barmap.act=1
	EOF
	exit 0
fi
if [ ! -f "$tar" ]; then
	command -v mmdebstrap >/dev/null || "$top/scripts/deps.sh" act
	echo "debian-image: making debian:$rel (mmdebstrap, this host's Debian archive)" >&2
	# shellcheck disable=SC2016  # "$1" is the root, in mmdebstrap's hooks
	python3 "$top/harness/barmap/build/apt.py" --sources "$rel" |
		mmdebstrap --variant=minbase --quiet --include=nodejs,ca-certificates \
			--customize-hook="[ ! -d $ca ] || cp -r $ca/. \"\$1$ca/\"" \
			--customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1' \
			--customize-hook="printf '$pip_conf' >\"\$1/etc/pip.conf\"" \
			"$rel" "$dir/debian-$rel.tmp.tar" -
	mv "$dir/debian-$rel.tmp.tar" "$tar"
fi
"$engine" import --change 'LABEL barmap.act=1' --change 'CMD ["bash"]' "$tar" "debian:$rel" >/dev/null
