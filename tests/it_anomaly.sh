#!/usr/bin/env bash
# Anomaly detection a monitoring pipeline can trust:
#  - training on chosen classes, with another class mixed in (--classes,
#    --contaminate), recorded in the model file; `aetrain flag` finds the
#    mixed-in images again (the anomaly tutorial, on the test fixtures);
#  - drift on /metrics: 100 digits then 100 Fashion images to the digit
#    model move aeserve_drift_share from about 0.01 to above 0.9.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"

# ---- class selection and contamination ----
"$T" train --data tests/fixtures/digits --classes 1 --contaminate 3:0.1 --epochs 2 --quiet \
	--out "$TMPD/ones.safetensors" > "$TMPD/train.txt" 2>&1
check "train --classes 1 --contaminate 3:0.1" test -s "$TMPD/ones.safetensors"
meta=$(head -c 8000 "$TMPD/ones.safetensors" | tr -d '\\\000')
check "the model file records the classes" grep -q '"classes":"1"' <<<"$meta"
check "the model file records the contamination" grep -q '"contaminate":"3:0.1"' <<<"$meta"
"$T" flag "$TMPD/ones.safetensors" tests/fixtures/digits --quantile 0.9 --grid "$TMPD/flagged.png" > "$TMPD/flag.txt"
check "flag: the set the model was trained on (34 ones, 4 threes)" grep -q '(38 images)' "$TMPD/flag.txt"
check "flag: some images flagged" grep -qE '^flagged: [1-9]' "$TMPD/flag.txt"
check "flag: a grid of them" test -s "$TMPD/flagged.png"
# a run killed outright and resumed selects the same images: the same model
"$T" train --data tests/fixtures/digits --classes 1 --contaminate 3:0.1 --epochs 40 --threads 1 --quiet \
	--out "$TMPD/r1.safetensors" >/dev/null 2>&1
"$T" train --data tests/fixtures/digits --classes 1 --contaminate 3:0.1 --epochs 40 --threads 1 --quiet \
	--checkpoint-every 3 --out "$TMPD/r2.safetensors" >/dev/null 2>&1 &
kp=$!
# killed once its first checkpoint is there (not after a fixed time: a faster
# trainer finished 40 epochs of this set within the second once)
for _ in $(seq 1500); do
	[ -s "$TMPD/r2.ckpt" ] && break
	kill -0 "$kp" 2>/dev/null || break
	sleep 0.02
done
kill -KILL "$kp" 2>/dev/null; wait "$kp" 2>/dev/null
if [ -s "$TMPD/r2.ckpt" ]; then
	"$T" train --resume "$TMPD/r2.ckpt" --quiet >/dev/null 2>&1
	sum() { head -c 8000 "$1" | tr ',' '\n' | grep -a '"ae.checksum"'; }
	check "killed and resumed with --classes: the uninterrupted run's model" test "$(sum "$TMPD/r1.safetensors")" = "$(sum "$TMPD/r2.safetensors")"
else
	bad "no checkpoint while the run went on"
fi
expect_fail "--classes that are no list" "is not a list of class numbers" "$T" train --data tests/fixtures/digits \
	--classes 1,x --out "$TMPD/x.safetensors"
expect_fail "--contaminate without --classes" "needs --classes" "$T" train --data tests/fixtures/digits \
	--contaminate 3:0.01 --out "$TMPD/x.safetensors"
expect_fail "--contaminate with a class trained on" "is one of --classes" "$T" train --data tests/fixtures/digits \
	--classes 1,3 --contaminate 3:0.01 --out "$TMPD/x.safetensors"
expect_fail "more contamination than the data holds" "images of class 3" "$T" train --data tests/fixtures/digits \
	--classes 1 --contaminate 3:0.45 --out "$TMPD/x.safetensors"

# ---- drift ----
"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 100 >/dev/null
expect_fail "classes on data without labels" "no labels" "$T" train --data "$TMPD/digits" \
	--classes 1 --out "$TMPD/x.safetensors"
"$T" export tests/fixtures/fashion --out "$TMPD/fashion" --limit 100 >/dev/null
start_server "$TMPD/log" --drift-window 100 --log-format none --default mnist models/ || { done_tests; exit 1; }
U=$SRV_URL
share() { curl -s "$U/metrics" | sed -n 's/^aeserve_drift_share{model="mnist"} //p'; }
send() {
	local args=() f
	for f in "$1"/*.png; do args+=(-F "image=@$f"); done
	expect_status "$2 scored" 200 "${args[@]}" "$U/v1/models/mnist/anomaly"
}
check "no drift figure before any score" test -z "$(share)"
send "$TMPD/digits" "100 digits"
s1=$(share)
check "drift after 100 digits about 0.01 ($s1)" awk -v s="$s1" 'BEGIN { exit !(s != "" && s <= 0.05) }'
send "$TMPD/fashion" "100 Fashion images"
s2=$(share)
check "drift after 100 Fashion images above 0.9 ($s2)" awk -v s="$s2" 'BEGIN { exit !(s > 0.9) }'
m=$(curl -s "$U/metrics")
check "scores counted" grep -q '^aeserve_anomaly_score_count{model="mnist"} 200$' <<<"$m"
check "anomalies counted" grep -qE '^aeserve_anomalies_total\{model="mnist"\} [0-9]{2,}$' <<<"$m"
# V2 answers with a score count too; a reconstruction alone does not.
curl -s -H "Inference-Header-Content-Length: 0" --data-binary @"$TMPD/digits/00000.png" "$U/v2/models/mnist/infer" >/dev/null
check "a V2 answer with scores counts" grep -q '^aeserve_anomaly_score_count{model="mnist"} 201$' <<<"$(curl -s "$U/metrics")"
curl -s -H 'Content-Type: image/png' --data-binary @"$TMPD/digits/00000.png" "$U/v1/models/mnist/reconstruct" >/dev/null
check "a reconstruction does not" grep -q '^aeserve_anomaly_score_count{model="mnist"} 201$' <<<"$(curl -s "$U/metrics")"
# ---- per-pixel maps and heatmaps ----
D0="$TMPD/digits/00000.png" F0="$TMPD/fashion/00000.png"
x=$("$BUILD/tests/tools/v2codec" pixels "$F0")
y=$(curl -s -H 'Content-Type: image/png' --data-binary @"$F0" "$U/v1/models/mnist/reconstruct" | jq -c .data)
a=$(curl -s -H 'Content-Type: image/png' --data-binary @"$F0" "$U/v1/models/mnist/anomaly?map=true")
check "?map=true: a map [1,28,28] beside the scores" jqe '.maps.shape == [1,28,28] and (.results | length) == 1' <<<"$a"
# shellcheck disable=SC2016 # a jq program
check "the map is |input - reconstruction| within 1e-6" jqe -n --argjson x "$x" --argjson y "$y" --argjson m "$(jq -c .maps.data <<<"$a")" \
	'[range(784) | (($x[.] - $y[.] | fabs) - $m[.] | fabs) <= 1e-6] | all'
expect_status "Accept: image/png: a heatmap" 200 -H 'Content-Type: image/png' -H 'Accept: image/png' \
	--data-binary @"$F0" "$U/v1/models/mnist/anomaly?scale=6"
check "the heatmap is a PNG" grep -qi '^content-type: image/png' "$HEADERS"
cp "$BODY" "$TMPD/heat.png"
check "the heatmap is 6 times the input: $(png_size "$TMPD/heat.png")" test "$(png_size "$TMPD/heat.png")" = 168x168
check "an RGB PNG" test "$(od -An -tu1 -j25 -N1 "$TMPD/heat.png" | tr -d ' ')" = 2
curl -s -o "$TMPD/heat_d.png" -H 'Content-Type: image/png' -H 'Accept: image/png' --data-binary @"$D0" "$U/v1/models/mnist/anomaly"
check "default scale 4: $(png_size "$TMPD/heat_d.png")" test "$(png_size "$TMPD/heat_d.png")" = 112x112
PD=(-H 'Content-Type: image/png' --data-binary @"$D0")
expect_error "?scale=33 refused" 400 invalid_parameter "${PD[@]}" "$U/v1/models/mnist/anomaly?scale=33"
expect_error "?map=maybe refused" 400 invalid_parameter "${PD[@]}" "$U/v1/models/mnist/anomaly?map=maybe"
expect_error "?map on encode refused" 400 invalid_parameter "${PD[@]}" "$U/v1/models/mnist/encode?map=true"
# ---- the scores ----
for sc in mse ssim max latent combined; do
	a=$(curl -s -H 'Content-Type: image/png' --data-binary @"$F0" "$U/v1/models/mnist/anomaly?score=$sc")
	# shellcheck disable=SC2016 # a jq program
	check "?score=$sc answers with that metric" jqe --arg s "$sc" '.metric == $s and (.results[0].score | type) == "number"' <<<"$a"
	check "?score=$sc calls the Fashion image anomalous" jqe '.results[0].anomaly == true or .metric == "latent"' <<<"$a"
done
expect_error "?score=bogus refused" 400 invalid_parameter "${PD[@]}" "$U/v1/models/mnist/anomaly?score=bogus"
v2=$(jq -c -n --argjson p "$("$BUILD/tests/tools/v2codec" pixels "$F0")" '{inputs: [{name: "input", shape: [1,784], datatype: "FP32", data: $p}], parameters: {score: "ssim"}, outputs: [{name: "score"}]}' |
	curl -s -H 'Content-Type: application/json' --data-binary @- "$U/v2/models/mnist/infer")
v1=$(curl -s -H 'Content-Type: image/png' --data-binary @"$F0" "$U/v1/models/mnist/anomaly?score=ssim" | jq -c '[.results[0].score]')
# shellcheck disable=SC2016 # a jq program
check "V2 score=ssim: the /v1 score within 1e-6" jqe -n --argjson a "$(jq -c '.outputs[0].data' <<<"$v2")" --argjson b "$v1" '($a[0] - $b[0] | fabs) < 1e-6' 
check "V2 says which score" jqe '.parameters.score == "ssim"' <<<"$v2"

# ---- aetrain calibrate: the same statistics again, weights untouched ----
cp "$TMPD/ones.safetensors" "$TMPD/recal.safetensors"
out=$("$T" calibrate "$TMPD/recal.safetensors" tests/fixtures/digits)
check "calibrate: weights unchanged ($out)" grep -q "weights unchanged" <<<"$out"
p99() { "$T" eval "$1" tests/fixtures/digits --split train --normal-class 1 | sed -n 's/^auroc_normal_class_1_ssim: //p'; }
check "calibrate: the model scores as before" test "$(p99 "$TMPD/recal.safetensors")" = "$(p99 "$TMPD/ones.safetensors")"
expect_fail "calibrate on other data" "not its data" "$T" calibrate "$TMPD/recal.safetensors" tests/fixtures/fashion --split test

expect_fail "--drift-window 0" "--drift-window" "$BUILD/aeserve" --drift-window 0 models/
stop_server "$SRV_PID"
start_server "$TMPD/log2" --log-format none "$TMPD/ones.safetensors" || bad "serve the ones model"
U=$SRV_URL
ds=$(curl -s "$U/v1/models/ones" | jq -r .default_score)
check "the ones model's default score was chosen at training ($ds)" grep -q "default $ds\$" "$TMPD/train.txt"
# shellcheck disable=SC2016 # a jq program
check "an anomaly request without ?score= gets it" jqe --arg s "$ds" '.metric == $s' <<<"$(curl -s -H 'Content-Type: image/png' --data-binary @"$TMPD/digits/00000.png" "$U/v1/models/ones/anomaly")"
check "GET /v1/models/ones says what it was trained on" \
	jqe '.training.classes == "1" and .training.contaminate == "3:0.1"' <<<"$(curl -s "$U/v1/models/ones")"

done_tests
