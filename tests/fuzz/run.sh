#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from its committed seeds
# (tests/fuzz/corpus/NAME, plus PngSuite for the PNG decoders), keeping what
# it learns in $BUILD/corpus/NAME. Prints one line per target (executions,
# coverage, corpus, peak RSS) and exits 1 if any target found a crash, a
# leak, a timeout or an allocation past its limit; the input that did it
# is in $BUILD/findings/.
#
# Memory limits are the limits of the code each target runs:
#   png, multipart  one decode holds at most 64 MiB of rows (AE_PNG_MAX_PIXELS
#                   at 4 bytes) and the request at most 64 MiB inflated
#                   (SRV_MAX_DECODED_BYTES): no single allocation past 72 MiB
#   json, query     floats for at most half the body's bytes: 16 MiB at the
#                   8 MiB body limit
#   modelfile       the header is at most 16 MiB (AE_ST_MAX_HEADER); every
#                   other allocation must be backed by bytes of the file
#   idx             a data set of up to 2 GiB (IDX_MAX_BYTES), as aetrain allows
#   v2              as png for BYTES inputs; floats for at most the body's
#                   bytes otherwise
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build-fuzz}
SECONDS_EACH=${1:-60}
declare -A MALLOC=( [png]=72 [multipart]=72 [json]=16 [query]=16 [modelfile]=64 [idx]=2048 [v2]=72 )
declare -A RSS=( [png]=512 [multipart]=512 [json]=512 [query]=256 [modelfile]=512 [idx]=2560 [v2]=512 )
declare -A EXTRA=( [png]=tests/fixtures/pngsuite )
mkdir -p "$BUILD/findings"
fail=0
printf '%-10s %8s %10s %8s %7s %7s %7s %s\n' target seconds execs exec/s cov ft corpus peak_rss_mb
for bin in "$BUILD"/fuzz/fuzz_*; do
	name=${bin##*/fuzz_}
	work="$BUILD/corpus/$name"
	mkdir -p "$work"
	log="$BUILD/fuzz_$name.log"
	extra=(); [ -n "${EXTRA[$name]:-}" ] && extra=("${EXTRA[$name]}")
	"$bin" "$work" "tests/fuzz/corpus/$name" "${extra[@]}" -max_total_time="$SECONDS_EACH" \
		-malloc_limit_mb="${MALLOC[$name]}" -rss_limit_mb="${RSS[$name]}" -timeout=10 -max_len=1048576 \
		-print_final_stats=1 -artifact_prefix="$BUILD/findings/$name-" > "$log" 2>&1
	rc=$?
	done_line=$(grep -E '^#[0-9]+[[:space:]].* cov: ' "$log" | tail -1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	persec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
	printf '%-10s %8s %10s %8s %7s %7s %7s %s\n' "$name" "$SECONDS_EACH" "${execs:-?}" "${persec:-?}" "${cov:-?}" \
		"${ft:-?}" "${corp:-?}" "${peak:-?}"
	if [ "$rc" -ne 0 ]; then
		fail=1
		echo "fuzz_$name FOUND SOMETHING (exit $rc); see $log and $BUILD/findings/:" >&2
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5 >&2
	fi
done
exit $fail
