#!/usr/bin/env bash
# Run the kernel's checkpatch.pl on the driver.  checkpatch.pl is not in the
# headers packages, so it is taken once from the distribution's linux-source
# package (only scripts/checkpatch.pl and its data files are kept in the cache).
#
#   scripts/checkpatch.sh [checkpatch options] FILE...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --kernel-suite ""
suite=$KERNEL_SUITE
dir=$CHECKPATCH_DIR
if [ ! -x "$dir/scripts/checkpatch.pl" ]; then
	echo "checkpatch: fetching it from the linux-source package (once)" >&2
	base=$KERNEL_DIR
	barmap_apt state "$base/apt" "$suite" >/dev/null
	barmap_apt update "$base/apt"
	pkg=$(barmap_apt depends "$base/apt" linux-source --prefix linux-source- | head -n1)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	barmap_apt download "$base/apt" "$pkg" --to "$tmp" >/dev/null
	dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" --wildcards './usr/src/linux-source-*.tar.xz'
	mkdir -p "$dir.new"
	tar -xJf "$tmp"/usr/src/linux-source-*.tar.xz -C "$dir.new" --strip-components=1 \
		--wildcards '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	rm -rf "$dir"
	mv "$dir.new" "$dir"
fi
exec "$dir/scripts/checkpatch.pl" --no-tree --strict --show-types -f "$@"
