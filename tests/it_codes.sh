#!/usr/bin/env bash
# Compact codes: encode ?format=f16 and int8 (and V2's latent datatype
# FP16 and INT8, JSON and binary) agree with the f32 code rounded the same
# way; decode takes them back to the same image as the floats they stand
# for; what a format cannot take is refused naming why.
# shellcheck disable=SC2016 # jq programs, whose $names are jq's
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T=$BUILD/aetrain
# A model whose code is too long for latent statistics, so it has no int8 scale.
"$T" train --data tests/fixtures/digits --limit 64 --epochs 1 --latent 300 --quiet --out "$TMPD/wide.safetensors" >/dev/null
start_server "$TMPD/log" --log-format none --default mnist models/ "$TMPD/wide.safetensors" || exit 1
U=$SRV_URL
"$T" export tests/fixtures/digits --limit 2 --out "$TMPD/d" --json "$TMPD/two.json" >/dev/null
enc() { curl -s -H 'Content-Type: application/json' --data-binary @"$TMPD/two.json" "$U/v1/models/mnist/encode$1"; }
f32=$(enc "")
f16=$(enc "?format=f16")
i8=$(enc "?format=int8")
check "f16: format named, shape [2,16]" jqe '.format == "f16" and .shape == [2,16]' <<<"$f16"
check "f16: each value the f32 one to a half's precision (relative 2^-10, as printed)" \
	jqe -n --argjson a "$f32" --argjson b "$f16" \
	'[range(32) as $i | ($a.data[$i] - $b.data[$i] | fabs) <= ($a.data[$i] | fabs) / 1024 + 1e-7] | all'
check "int8: integers in [-127, 127] and the model's 16 scales" \
	jqe '.format == "int8" and (.scale | length) == 16 and ([.data[] | . == floor and . >= -127 and . <= 127] | all)' <<<"$i8"
check "int8: q * scale within half a step of the f32 value" \
	jqe -n --argjson a "$f32" --argjson b "$i8" \
	'[range(32) as $i | ($a.data[$i] - $b.data[$i] * $b.scale[$i % 16] | fabs) <= $b.scale[$i % 16] / 2 + 1e-6] | all'
# decode: the int8 code and the floats it stands for give the same image.
dec() { curl -s -H 'Content-Type: application/json' --data-binary @- "$U/v1/models/mnist/decode$1"; }
a=$(jq -c '{shape, data}' <<<"$i8" | dec "?format=int8")
b=$(jq -c '{shape, data: [.data as $d | .scale as $s | range($d | length) | $d[.] * $s[. % 16]]}' <<<"$i8" | dec "")
check "decode ?format=int8 = decode of q * scale (1e-6)" \
	jqe -n --argjson a "$a" --argjson b "$b" '$a.shape == [2,1,28,28] and ([range(1568) as $i | ($a.data[$i] - $b.data[$i] | fabs) < 1e-6] | all)'
a=$(jq -c '{shape, data}' <<<"$f16" | dec "?format=f16")
b=$(jq -c '{shape, data}' <<<"$f32" | dec "?format=f16")
check "decode ?format=f16: the halves as printed and the floats they round from decode alike" test "$a" = "$b"
b=$(jq -c '{shape, data}' <<<"$f32" | dec "")
check "and within 0.01 of the f32 code's image" jqe -n --argjson a "$a" --argjson b "$b" \
	'[range(1568) as $i | ($a.data[$i] - $b.data[$i] | fabs) < 0.01] | all'
# refused, saying why
J=(-H 'Content-Type: application/json')
jq -c '{shape, data: (.data | .[0] = 1.5)}' <<<"$i8" > "$TMPD/bad8.json"
expect_status "int8 decode of 1.5: 422" 422 "${J[@]}" --data-binary @"$TMPD/bad8.json" "$U/v1/models/mnist/decode?format=int8"
check "naming it ($(cat "$BODY"))" grep -q 'data\[0\] = 1.5 is not an int8 code' "$BODY"
jq -c '{shape, data: (.data | .[3] = 70000)}' <<<"$f16" > "$TMPD/bad16.json"
expect_status "f16 decode of 70000: 422" 422 "${J[@]}" --data-binary @"$TMPD/bad16.json" "$U/v1/models/mnist/decode?format=f16"
check "naming it ($(cat "$BODY"))" grep -q 'data\[3\] = 70000 is not a half float' "$BODY"
expect_status "format=f8: 400" 400 "${J[@]}" --data-binary @"$TMPD/two.json" "$U/v1/models/mnist/encode?format=f8"
check "listing the formats" grep -q "format 'f8' is not one of f32, f16, int8" "$BODY"
"$T" export tests/fixtures/digits --limit 1 --out "$TMPD/one" >/dev/null
expect_status "int8 from a model without a scale: 422" 422 -H 'Content-Type: image/png' --data-binary @"$TMPD/one/00000.png" "$U/v1/models/wide/encode?format=int8"
check "saying how to get one" grep -q "has no int8 scale.*aetrain calibrate" "$BODY"
expect_error "format on reconstruct: 400 (not its parameter)" 400 invalid_parameter -H 'Content-Type: image/png' --data-binary @"$TMPD/one/00000.png" "$U/v1/models/mnist/reconstruct?format=f16"

# V2: the latent's datatype.
v2() { jq -c --arg dt "$1" --argjson bin "$2" '{inputs: [{name: "input", shape: .shape, datatype: "FP32", data: .data}],
	outputs: [{name: "latent", parameters: {datatype: $dt, binary_data: $bin}}]}' "$TMPD/two.json" |
	curl -s -D "$HEADERS" -H 'Content-Type: application/json' --data-binary @- "$U/v2/models/mnist/infer"; }
j=$(v2 FP16 false)
check "V2 FP16: datatype FP16, the /v1 f16 values" jqe -n --argjson a "$j" --argjson b "$f16" \
	'$a.outputs[0].datatype == "FP16" and $a.outputs[0].data == $b.data'
j=$(v2 INT8 false)
check "V2 INT8: the /v1 int8 values and scale" jqe -n --argjson a "$j" --argjson b "$i8" \
	'$a.outputs[0].datatype == "INT8" and $a.outputs[0].data == $b.data and $a.outputs[0].parameters.scale == $b.scale'
v2 INT8 true > "$TMPD/b8"
hl=$(sed -n 's/^Inference-Header-Content-Length: \([0-9]*\).*/\1/ip' "$HEADERS" | tr -d '\r')
check "V2 INT8 binary: 32 bytes after the JSON" test "$(($(stat -c %s "$TMPD/b8") - hl))" = 32
check "V2 INT8 binary: the /v1 int8 values, a byte each" test \
	"$(tail -c 32 "$TMPD/b8" | od -An -v -t d1 | xargs)" = "$(jq -r '.data | map(tostring) | join(" ")' <<<"$i8")"
v2 FP16 true > "$TMPD/b16"
hl=$(sed -n 's/^Inference-Header-Content-Length: \([0-9]*\).*/\1/ip' "$HEADERS" | tr -d '\r')
check "V2 FP16 binary: 64 bytes (2 per value)" test "$(($(stat -c %s "$TMPD/b16") - hl))" = 64
mkdir -p "$TMPD/resp"
echo "$f16" > "$TMPD/resp/f16.json"
echo "$i8" > "$TMPD/resp/i8.json"
v2 FP16 false > "$TMPD/resp/v2f16.json"
v2 INT8 false > "$TMPD/resp/v2i8.json"
check "the answers match openapi.yaml's Tensor" node tests/openapi/check.mjs response openapi.yaml Tensor "$TMPD/resp/f16.json" "$TMPD/resp/i8.json"
check "and V2InferResponse" node tests/openapi/check.mjs response openapi.yaml V2InferResponse "$TMPD/resp/v2f16.json" "$TMPD/resp/v2i8.json"
e=$(v2 INT4 false)
check "V2 datatype INT4: 400 naming the three" grep -q 'datatype is FP32, FP16 or INT8' <<<"$e"
done_tests
