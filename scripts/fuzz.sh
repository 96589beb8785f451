#!/usr/bin/env bash
# make fuzz: QEMU's own device fuzzer, generic-fuzz (libFuzzer), against barmap,
# on the fuzz flavor's clang + ASan + UBSan qemu-fuzz-x86_64 (scripts/qemu.sh SUITE fuzz).
#
#   scripts/fuzz.sh [SUITE]
#
# Environment: TARGET (barmap, the default, on pc; barmap-q35 behind a PCIe root
# port), RUNS (executions, default 1000000), TIME (seconds, 0 = no limit),
# JOBS (parallel libFuzzer workers, default 1).
# The corpus is kept in FUZZ_DIR/corpus-TARGET and grows run after run; a crash
# leaves its reproducer in FUZZ_DIR/crashes/ and the run exits non-zero.  The
# log is FUZZ_DIR/TARGET.log.  Replay one input:
#   qemu-fuzz-x86_64 --fuzz-target=generic-fuzz-TARGET FUZZ_DIR/crashes/crash-...
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/paths.sh
. "$top/scripts/paths.sh" --qemu-suite "${1:-}" --qemu-flavor fuzz
target=${TARGET:-barmap}
runs=${RUNS:-1000000}
time_limit=${TIME:-0}
jobs=${JOBS:-1}
parallel=()
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")

"$top/scripts/deps.sh" fuzz
"$top/scripts/qemu.sh" "$QEMU_SUITE" fuzz
corpus=$FUZZ_DIR/corpus-$target
mkdir -p "$corpus" "$FUZZ_DIR/crashes"
log=$FUZZ_DIR/$target.log
before=$(find "$FUZZ_DIR/crashes" -type f | wc -l)
echo "barmap fuzz: generic-fuzz-$target, $runs runs, corpus $corpus, log $log" >&2
rm -f "$FUZZ_DIR"/fuzz-*.log
set +e
# generic-fuzz forks a child per input: timeouts are its own (QEMU_FUZZ_TIMEOUT).
# A fork costs in proportion to the parent's resident memory, and with ASan's default
# 256 MB quarantine the parent's grew by ~1.5 KB per execution (libFuzzer's and qtest's
# freed buffers), 137 -> 299 MB over 100,000 executions, the rate falling with it.  Each
# child runs one input for milliseconds: 16 MB of quarantine is still far more than it frees.
(cd "$FUZZ_DIR" && UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:quarantine_size_mb=16} \
	"$QEMU_BIN" --fuzz-target="generic-fuzz-$target" \
	-runs="$runs" -max_total_time="$time_limit" ${parallel[@]+"${parallel[@]}"} \
	-artifact_prefix="$FUZZ_DIR/crashes/" -print_final_stats=1 \
	"$corpus") >"$log" 2>&1
rc=$?
set -e
# with JOBS > 1 each worker logs to FUZZ_DIR/fuzz-N.log, and libFuzzer copies each
# finished worker's log into the main one: the figures are read from the workers' own
logs=("$log")
if [ "$jobs" -gt 1 ]; then
	logs=()
	for ((i = 0; i < jobs; i++)); do logs+=("$FUZZ_DIR/fuzz-$i.log"); done
fi
grep -hE '^(stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|#[0-9]+[[:space:]]+(DONE|INITED))' \
	"${logs[@]}" >&2 2>/dev/null || true
# one line for the whole run: every worker's executions, the best coverage
awk '/^stat::number_of_executed_units:/ { n += $2 }
	/^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|DONE)[[:space:]]/ {
		for (i = 1; i < NF; i++) if ($i == "cov:" && $(i + 1) > cov) cov = $(i + 1)
		for (i = 1; i < NF; i++) if ($i == "ft:" && $(i + 1) > ft) ft = $(i + 1) }
	END { printf "barmap fuzz: %d executions in all, coverage %d edges, %d features\n", n, cov, ft }' \
	"${logs[@]}" >&2 2>/dev/null || true
after=$(find "$FUZZ_DIR/crashes" -type f | wc -l)
if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
	echo "barmap fuzz: FAILED (exit $rc, $((after - before)) new reproducer(s) in $FUZZ_DIR/crashes); log: $log" >&2
	grep -h -m1 -A20 -E 'ERROR: (AddressSanitizer|libFuzzer)|runtime error' "$log" "${logs[@]}" >&2 ||
		tail -n 30 "$log" >&2
	exit 1
fi
echo "barmap fuzz: no crash; corpus $(find "$corpus" -type f | wc -l) inputs" >&2
