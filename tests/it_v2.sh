#!/usr/bin/env bash
# The Open Inference Protocol (V2) on aeserve: requests written as the
# protocol's documents (KServe's and Triton's) write them, in JSON and with
# the binary tensor data extension, each output checked against the /v1
# answer for the same image within 1e-6; the metadata and health routes;
# the errors, each {"error": "..."} with a 4xx status.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"
C="$BUILD/tests/tools/v2codec"
J=(-H "Content-Type: application/json")

"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 3 >/dev/null
D0="$TMPD/digits/00000.png" D1="$TMPD/digits/00001.png"
mkdir -p "$TMPD/models"
cp models/mnist.safetensors models/fashion.safetensors "$TMPD/models/"
start_server "$TMPD/log" --default mnist "$TMPD/models" || { done_tests; exit 1; }
U=$SRV_URL

# close A B: every number of the JSON arrays A and B within 1e-6 (booleans equal).
close() {
	jq -n -e --argjson a "$1" --argjson b "$2" '
		($a | flatten) as $x | ($b | flatten) as $y |
		($x | length) == ($y | length) and ($x | length) > 0 and
		([range($x | length) | if ($x[.] | type) == "boolean" then $x[.] == $y[.]
		  else (($x[.] - $y[.]) | fabs) <= 1e-6 end] | all)' >/dev/null
}
out() { jq -c --arg n "$2" '.outputs[] | select(.name == $n) | .data' <<<"$1"; }

# ---- the /v1 answers for image 0 and 1 ----
for i in 0 1; do
	f="$TMPD/digits/0000$i.png"
	V1_LAT[i]=$(curl -s -H "Content-Type: image/png" --data-binary @"$f" "$U/v1/encode" | jq -c .data)
	V1_REC[i]=$(curl -s -H "Content-Type: image/png" --data-binary @"$f" "$U/v1/reconstruct" | jq -c .data)
	a=$(curl -s -H "Content-Type: image/png" --data-binary @"$f" "$U/v1/anomaly")
	V1_SCORE[i]=$(jq -c '[.results[].score]' <<<"$a")
	V1_ANOM[i]=$(jq -c '[.results[].anomaly]' <<<"$a")
	PIX[i]=$("$C" pixels "$f")
done
check "v1 answers" test "$(jq length <<<"${V1_REC[0]}")" = 784

# all_match WHAT ANSWER I: each of the four outputs of image I matches /v1.
all_match() {
	local what=$1 a=$2 i=${3:-0}
	check "$what: latent" close "$(out "$a" latent)" "${V1_LAT[i]}"
	check "$what: reconstruction" close "$(out "$a" reconstruction)" "${V1_REC[i]}"
	check "$what: score" close "$(out "$a" score)" "${V1_SCORE[i]}"
	check "$what: anomaly" close "$(out "$a" anomaly)" "${V1_ANOM[i]}"
}

# ---- metadata and health ----
check "GET /v2" jqe '.name == "aeserve" and (.extensions | index("binary_tensor_data")) and (.extensions | index("model_repository"))' <<<"$(curl -s "$U/v2")"
expect_status "live" 200 "$U/v2/health/live"
check "ready" jqe '.ready == true' <<<"$(curl -s "$U/v2/health/ready")"
m=$(curl -s "$U/v2/models/mnist")
check "model metadata: input" jqe '.inputs == [{"name":"input","datatype":"FP32","shape":[-1,1,28,28]}]' <<<"$m"
check "model metadata: outputs" jqe '[.outputs[] | [.name, .datatype, .shape]] == [["latent","FP32",[-1,16]],["reconstruction","FP32",[-1,1,28,28]],["score","FP32",[-1]],["anomaly","BOOL",[-1]]]' <<<"$m"
check "model ready" jqe '.ready == true' <<<"$(curl -s "$U/v2/models/mnist/ready")"
check "versions/1 is the model" jqe '.name == "fashion"' <<<"$(curl -s "$U/v2/models/fashion/versions/1")"

# ---- JSON, as in KServe's example: pretty-printed, nested data, id ----
nested=$(jq -c '[[[range(28) as $r | .[$r*28:($r+1)*28]]]]' <<<"${PIX[0]}")
cat > "$TMPD/req_json.json" <<EOF
{
  "id" : "42",
  "inputs" : [
    {
      "name" : "input",
      "shape" : [ 1, 1, 28, 28 ],
      "datatype" : "FP32",
      "data" : $nested
    }
  ]
}
EOF
a=$(curl -s "${J[@]}" --data-binary @"$TMPD/req_json.json" "$U/v2/models/mnist/infer")
check "JSON: id echoed, model named" jqe '.id == "42" and .model_name == "mnist" and .model_version == "1"' <<<"$a"
check "JSON: four outputs in order, shapes" jqe '[.outputs[] | [.name, .datatype, .shape]] == [["latent","FP32",[1,16]],["reconstruction","FP32",[1,1,28,28]],["score","FP32",[1]],["anomaly","BOOL",[1]]]' <<<"$a"
all_match "JSON nested" "$a"

# flat data, shape [N, C*H*W], two images, outputs asked for
jq -c -n --argjson p0 "${PIX[0]}" --argjson p1 "${PIX[1]}" \
	'{inputs: [{name: "input", shape: [2, 784], datatype: "FP32", data: ($p0 + $p1)}], outputs: [{name: "score"}, {name: "latent"}]}' > "$TMPD/req_flat.json"
a=$(curl -s "${J[@]}" --data-binary @"$TMPD/req_flat.json" "$U/v2/models/mnist/infer")
check "flat: only the outputs asked, in that order" jqe '[.outputs[].name] == ["score","latent"] and .outputs[1].shape == [2,16]' <<<"$a"
check "flat: image 1's latent" close "$(jq -c '.outputs[1].data[16:32]' <<<"$a")" "${V1_LAT[1]}"
check "flat: image 0's score" close "$(jq -c '[.outputs[0].data[0]]' <<<"$a")" "${V1_SCORE[0]}"
a=$(jq -c '.outputs = [{name: "latent"}]' "$TMPD/req_flat.json" | curl -s "${J[@]}" --data-binary @- "$U/v2/models/mnist/infer")
check "latent alone (an encode)" close "$(out "$a" latent)" "$(jq -c -n --argjson a "${V1_LAT[0]}" --argjson b "${V1_LAT[1]}" '$a + $b')"

# ---- binary, as in Triton's example: FP32 input, one output binary ----
printf '%s' "${PIX[0]}" | "$C" floats > "$TMPD/x0.f32"
hdr=$(jq -c -n --arg n "$(stat -c %s "$TMPD/x0.f32")" '{model_name: "mnist", inputs: [{name: "input", shape: [1,1,28,28], datatype: "FP32", parameters: {binary_data_size: ($n | tonumber)}}], outputs: [{name: "reconstruction", parameters: {binary_data: true}}, {name: "latent"}, {name: "score", parameters: {binary_data: true}}, {name: "anomaly", parameters: {binary_data: true}}]}')
{ printf '%s' "$hdr"; cat "$TMPD/x0.f32"; } > "$TMPD/req_bin"
curl -s -D "$TMPD/h_bin" -o "$TMPD/a_bin" -H "Content-Type: application/octet-stream" \
	-H "Inference-Header-Content-Length: ${#hdr}" --data-binary @"$TMPD/req_bin" "$U/v2/models/mnist/infer"
hl=$(tr -d '\r' < "$TMPD/h_bin" | sed -n 's/^Inference-Header-Content-Length: //Ip')
check "binary answer: Inference-Header-Content-Length" test -n "$hl"
a=$("$C" decode "${hl:-0}" < "$TMPD/a_bin")
check "binary answer: latent as JSON, the rest binary" jqe '(.outputs[1].data | length) == 16' <<<"$(head -c "${hl:-0}" "$TMPD/a_bin")"
all_match "binary FP32" "$a"

# binary_data_output for all, BYTES input holding two PNG files
"$C" bytes "$D0" "$D1" > "$TMPD/pngs"
hdr=$(jq -c -n --arg n "$(stat -c %s "$TMPD/pngs")" '{inputs: [{name: "input", shape: [2], datatype: "BYTES", parameters: {binary_data_size: ($n | tonumber)}}], parameters: {binary_data_output: true}}')
{ printf '%s' "$hdr"; cat "$TMPD/pngs"; } > "$TMPD/req_png"
curl -s -D "$TMPD/h_png" -o "$TMPD/a_png" -H "Inference-Header-Content-Length: ${#hdr}" --data-binary @"$TMPD/req_png" "$U/v2/models/mnist/infer"
hl=$(tr -d '\r' < "$TMPD/h_png" | sed -n 's/^Inference-Header-Content-Length: //Ip')
a=$("$C" decode "${hl:-0}" < "$TMPD/a_png")
check "BYTES: two images" jqe '.outputs[0].shape == [2,16]' <<<"$a"
check "BYTES: image 1's reconstruction" close "$(jq -c '.outputs[1].data[784:]' <<<"$a")" "${V1_REC[1]}"
a0=$(jq -c '.outputs |= map(.data |= (if length == 2 then .[0:1] else .[0:(length / 2)] end))' <<<"$a")
all_match "BYTES PNG" "$a0"

# header length 0: the body is the one input, a PNG file or FP32 images
a=$(curl -s -H "Inference-Header-Content-Length: 0" --data-binary @"$D0" "$U/v2/models/mnist/infer")
all_match "raw PNG" "$a"
a=$(curl -s -H "Inference-Header-Content-Length: 0" --data-binary @"$TMPD/x0.f32" "$U/v2/models/mnist/infer")
all_match "raw FP32" "$a"

# a KServe client's content_type hint is taken
a=$(jq -c '.inputs[0].parameters = {content_type: "np"}' "$TMPD/req_flat.json" | curl -s "${J[@]}" --data-binary @- "$U/v2/models/mnist/infer")
check "content_type taken" jqe '.outputs[0].shape == [2]' <<<"$a"

# threshold and quantile parameters
a=$(jq -c '.parameters = {threshold: 0}' "$TMPD/req_flat.json" | jq -c '.outputs = [{name: "anomaly"}]' | curl -s "${J[@]}" --data-binary @- "$U/v2/models/mnist/infer")
check "threshold 0: every image anomalous" jqe '.outputs[0].data == [true, true] and .parameters.threshold == 0' <<<"$a"
a=$(jq -c '.parameters = {quantile: 0.5}' "$TMPD/req_flat.json" | curl -s "${J[@]}" --data-binary @- "$U/v2/models/mnist/infer")
q50=$(jq '.error_quantiles.p50' <<<"$(curl -s "$U/v1/models/mnist")")
# shellcheck disable=SC2016 # a jq program
check "quantile 0.5: the threshold is the model's p50" jqe --argjson q "$q50" '(.parameters.threshold - $q | fabs) < 1e-6' <<<"$a"

# ---- errors: {"error": "..."} and a 4xx, never a 5xx ----
# bad_req NAME STATUS SUBSTRING PATH [curl args]: the status, and the
# protocol's error {"error": "..."} holding the substring.
bad_req() {
	local what=$1 want=$2 sub=$3 path=$4; shift 4
	expect_status "$what" "$want" "$@" "$U$path"
	# shellcheck disable=SC2016 # a jq program
	check "$what: the error says '$sub' ($(head -c 300 "$BODY"))" \
		jqe --arg s "$sub" '(.error | type) == "string" and (.error | contains($s)) and (keys == ["error"])' "$BODY"
}
I=/v2/models/mnist/infer
bad_req "malformed JSON" 400 "malformed JSON" $I "${J[@]}" -d '{"inputs": [}'
bad_req "no inputs" 400 "inputs" $I "${J[@]}" -d '{"inputs": []}'
bad_req "wrong input name" 400 "input 'x'" $I "${J[@]}" -d '{"inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","data":[0]}]}'
bad_req "wrong datatype" 400 "FP32" $I "${J[@]}" -d '{"inputs":[{"name":"input","shape":[1,784],"datatype":"INT8","data":[0]}]}'
bad_req "wrong shape" 400 "does not fit" $I "${J[@]}" -d '{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[0,0,0]}]}'
bad_req "too few values" 400 "data holds 3 values" $I "${J[@]}" -d '{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[0,0,0]}]}'
bad_req "value out of range" 400 "outside [0, 1]" $I "${J[@]}" --data-binary @<(jq -c '.inputs[0].data[5] = 7' "$TMPD/req_flat.json")
bad_req "unknown output" 400 "output 'nope'" $I "${J[@]}" --data-binary @<(jq -c '.outputs = [{name: "nope"}]' "$TMPD/req_flat.json")
bad_req "unknown parameter" 400 "unknown parameter 'priority'" $I "${J[@]}" --data-binary @<(jq -c '.parameters = {priority: 1}' "$TMPD/req_flat.json")
bad_req "threshold and quantile" 400 "not both" $I "${J[@]}" --data-binary @<(jq -c '.parameters = {threshold: 1, quantile: 0.5}' "$TMPD/req_flat.json")
bad_req "an unknown input parameter" 400 "binary_data_size and content_type only" $I "${J[@]}" -d '{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","parameters":{"scale":2},"data":[0]}]}'
bad_req "BYTES in JSON" 400 "binary data" $I "${J[@]}" -d '{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["x"]}]}'
bad_req "binary size mismatch" 400 "binary_data_size is" $I -H "Inference-Header-Content-Length: ${#hdr}" --data-binary @<(printf '%s' "$hdr"; head -c 100 "$TMPD/pngs")
bad_req "header length past the body" 400 "only" $I -H "Inference-Header-Content-Length: 99999" --data-binary @"$TMPD/req_png"
bad_req "header length not a number" 400 "byte count" $I -H "Inference-Header-Content-Length: -4" --data-binary @"$TMPD/req_png"
bad_req "raw body of no whole image" 400 "raw body" $I -H "Inference-Header-Content-Length: 0" --data-binary "abc"
bad_req "not a PNG in BYTES" 400 "element 0" $I -H "Inference-Header-Content-Length: ${#hdr}" --data-binary @<(printf '%s' "$hdr"; "$C" bytes "$TMPD/x0.f32" "$D1" | head -c "$(stat -c %s "$TMPD/pngs")")
bad_req "model_name disagrees" 400 "model_name" $I "${J[@]}" --data-binary @<(jq -c '.model_name = "fashion"' "$TMPD/req_flat.json")
bad_req "no such model" 404 "no model named 'nope'" /v2/models/nope/infer "${J[@]}" -d '{}'
bad_req "no such version" 404 "one version" /v2/models/mnist/versions/2/infer "${J[@]}" -d '{}'
bad_req "no such route" 404 "no route" /v2/models/mnist/explain "${J[@]}" -d '{}'
bad_req "GET infer" 405 "use POST" $I
bad_req "empty body" 400 "no body" $I -X POST
bad_req "model not ready: unknown" 404 "no model" /v2/models/nope/ready

# ---- the answers match their schemas in openapi.yaml ----
mkdir -p "$TMPD/resp"/{V2InferResponse,V2ModelMetadata,V2ServerMetadata,V2Error,V2RepositoryIndex}
curl -s "${J[@]}" --data-binary @"$TMPD/req_json.json" "$U$I" > "$TMPD/resp/V2InferResponse/1.json"
curl -s "${J[@]}" --data-binary @"$TMPD/req_flat.json" "$U$I" > "$TMPD/resp/V2InferResponse/2.json"
head -c "${hl:-0}" "$TMPD/a_png" > "$TMPD/resp/V2InferResponse/3.json"
curl -s "$U/v2/models/mnist" > "$TMPD/resp/V2ModelMetadata/1.json"
curl -s "$U/v2" > "$TMPD/resp/V2ServerMetadata/1.json"
curl -s -X POST "$U/v2/repository/index" > "$TMPD/resp/V2RepositoryIndex/1.json"
curl -s "${J[@]}" -d '{"inputs": [}' "$U$I" > "$TMPD/resp/V2Error/1.json"
curl -s "$U/v2/models/nope" > "$TMPD/resp/V2Error/2.json"
for k in V2InferResponse V2ModelMetadata V2ServerMetadata V2Error V2RepositoryIndex; do
	check "answers match openapi.yaml schema $k" node tests/openapi/check.mjs response openapi.yaml "$k" "$TMPD"/resp/$k/*.json
done
check "request bodies match openapi.yaml schema V2InferRequest" \
	node tests/openapi/check.mjs response openapi.yaml V2InferRequest "$TMPD/req_json.json" "$TMPD/req_flat.json"

done_tests
