#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq programs: their $ are jq's
# Reduced precision end to end: aeserve --precision int8 / bf16 / auto
# against --precision fp32 on the shipped models: what each model says it
# runs (/v1/models, V2 metadata), its thresholds those of that precision,
# reconstructions and codes close to fp32's; aetrain eval --precision's
# report; the refusals of a bad precision.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"

"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 2 >/dev/null
D0="$TMPD/digits/00000.png"
mkdir -p "$TMPD/models"
cp models/mnist.safetensors models/fashion.safetensors "$TMPD/models/"

# which precisions this CPU runs: aetrain eval says what ran
runs() { "$T" eval models/mnist.safetensors tests/fixtures/digits --limit 4 --precision "$1" | sed -n 's/^precision: \([a-z0-9]*\).*/\1/p'; }
declare -A RUNS=([fp32]=fp32 [bf16]=$(runs bf16) [int8]=$(runs int8))
check "eval --precision fp32 runs fp32" test "$(runs fp32)" = fp32
for p in bf16 int8; do
	check "eval --precision $p runs $p or fp32" grep -qxE "$p|fp32" <<<"${RUNS[$p]}"
done

i=0
for p in fp32 bf16 int8 auto; do
	i=$((i + 1))
	start_server "$TMPD/log.$p" --precision "$p" --default mnist "$TMPD/models" || { done_tests; exit 1; }
	U=$SRV_URL
	info=$(curl -s "$U/v1/models/mnist")
	want=${RUNS[$p]:-}
	[ "$p" = auto ] && want=$(jq -r .precision <<<"$info")
	check "$p: /v1/models says $want" test "$(jq -r .precision <<<"$info")" = "$want"
	check "$p: V2 metadata says $want" test "$(curl -s "$U/v2/models/fashion" | jq -r .parameters.precision)" = "$want"
	P99[i]=$(jq .error_quantiles.p99 <<<"$info")
	PREC[i]=$want
	REC[i]=$(curl -s -H "Content-Type: image/png" --data-binary @"$D0" "$U/v1/reconstruct" | jq -c .data)
	LAT[i]=$(curl -s -H "Content-Type: image/png" --data-binary @"$D0" "$U/v1/encode" | jq -c .data)
	a=$(curl -s -H "Content-Type: image/png" --data-binary @"$D0" "$U/v1/anomaly")
	check "$p: anomaly's threshold is the model's p99 at $want" jq -e --argjson q "${P99[$i]}" '.threshold - $q | fabs < 1e-6' <<<"$a" >/dev/null
	stop_server "$SRV_PID"
done

for k in 2 3 4; do
	[ "${PREC[$k]}" = fp32 ] && continue
	# (int8 over 1000 test digits: RMS 0.005 from fp32's pixels, at most 0.08)
	check "${PREC[$k]}: reconstruction close to fp32's" jq -n -e --argjson a "${REC[$k]}" --argjson b "${REC[1]}" \
		'[range($a | length)] | map(($a[.] - $b[.]) | fabs) | (max < 0.1) and (add / length < 0.01)' >/dev/null
	check "${PREC[$k]}: code's cosine to fp32's over 0.999" jq -n -e --argjson a "${LAT[$k]}" --argjson b "${LAT[1]}" \
		'([range($a | length)] | map($a[.] * $b[.]) | add) / ((($a | map(. * .) | add) * ($b | map(. * .) | add)) | sqrt) > 0.999' >/dev/null
	check "${PREC[$k]}: its own thresholds, not fp32's" test "${P99[$k]}" != "${P99[1]}"
done

out=$("$T" eval models/fashion.safetensors tests/fixtures/fashion --precision int8 --limit 50)
if [ "${RUNS[int8]}" = int8 ]; then
	check "eval int8: vs_fp32 line" grep -q '^vs_fp32: mse' <<<"$out"
fi
check "eval: flagged_p99 line" grep -q '^flagged_p99: ' <<<"$out"
expect_fail "aeserve --precision fp16" "--precision: 'fp16'" "$BUILD/aeserve" --precision fp16 "$TMPD/models"
expect_fail "aetrain eval --precision fp16" "--precision: 'fp16'" "$T" eval models/mnist.safetensors tests/fixtures/digits --precision fp16
done_tests
