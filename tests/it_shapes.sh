#!/usr/bin/env bash
# Models whose operations read one shape and write another, through every
# route: "shrink" takes colour 16x20 images and gives gray 8x12 ones,
# "grow" the other way round, and "over" is an autoencoder whose code (300
# numbers) is longer than its 3x6x10 image. Every answer (/v1 encode,
# decode, reconstruct, denoise, transform and anomaly, as JSON and PNG; V2
# infer in JSON, binary, BYTES and raw; both kinds of metadata) must have
# the plan's shape for what it writes: the reconstruction the output's, the
# codes the latent's, the maps and heatmap the input's. Under make sanitize
# this runs on the ASan build, so a buffer sized by one shape and filled by
# another fails here.
# shellcheck disable=SC2016 # the jq programs' $names are jq's
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
K="$BUILD/tests/tools/mkmodel"
C="$BUILD/tests/tools/v2codec"
M="$TMPD/models"
mkdir -p "$M"

if ! "$K" model "$M/shrink.safetensors" conv 3x16x20 1x8x12 7 ||
	! "$K" model "$M/grow.safetensors" conv 1x8x12 3x16x20 7 ||
	! "$K" model "$M/over.safetensors" dense 3x6x10 3x6x10 300; then
	bad "mkmodel"
	done_tests
	exit 1
fi
declare -A IN=([shrink]="3,16,20" [grow]="1,8,12" [over]="3,6,10")
declare -A OUT=([shrink]="1,8,12" [grow]="3,16,20" [over]="3,6,10")
declare -A LAT=([shrink]=7 [grow]=7 [over]=300)
for m in shrink grow over; do "$K" png "$TMPD/$m.png" "${IN[$m]//,/x}"; done
start_server "$TMPD/log" --log-format none --default over "$M" || exit 1
U=$SRV_URL

prod() { local p=1 d; for d in ${1//,/ }; do p=$((p * d)); done; echo "$p"; }
# halves N: a JSON array of N halves (no process: this runs often)
halves() { local s; printf -v s '%*s' "$1" ''; s=${s// /0.5,}; echo "[${s%,}]"; }
# tensor N SHAPE: {"shape": [N,SHAPE], "data": N*|SHAPE| halves}
tensor() { echo "{\"shape\":[$1,$2],\"data\":$(halves $(($1 * $(prod "$2"))))}"; }
# png_is FILE C H W: a PNG of H rows, W columns, gray (C 1) or RGB (C 3)
png_is() {
	[ "$(png_size "$1")" = "$4x$3" ] && [ "$(od -An -tu1 -j25 -N1 "$1" | tr -d ' ')" = "$([ "$2" = 1 ] && echo 0 || echo 2)" ]
}
# infer MEMBERS [CURL ARGS...]: model $m's V2 infer of $req with more members
infer() { echo "$req$1}" | curl -s "${@:2}" -H "Content-Type: application/json" -d @- "$U/v2/models/$m/infer"; }
# tensor_is JSON N SHAPE: {"shape": [N, SHAPE...]} with N * |SHAPE| values
tensor_is() { jqe --argjson s "[$2,$3]" --argjson n "$(($2 * $(prod "$3")))" '.shape == $s and (.data | length) == $n' <<<"$1"; }

for m in shrink grow over; do
	in=${IN[$m]} out=${OUT[$m]} lat=${LAT[$m]} P="$TMPD/$m.png" R="$U/v1/models/$m"
	ni=$(prod "$in") no=$(prod "$out")
	read -r _ ih iw <<<"${in//,/ }"
	read -r oc oh ow <<<"${out//,/ }"
	same=$([ "$in" = "$out" ] && echo true || echo false)

	# ---- metadata ----
	check "$m: /v1 metadata" jqe --argjson i "[$in]" --argjson o "[$out]" --argjson l "$lat" --argjson s "$same" \
		'.input_shape == $i and .output_shape == $o and .latent == $l and
		 ((.operations | index("anomaly")) != null) == $s and (.operations | index("transform")) != null' \
		<<<"$(curl -s "$R")"
	want='[{"name":"latent","datatype":"FP32","shape":[-1,'$lat']},{"name":"reconstruction","datatype":"FP32","shape":[-1,'$out']}]'
	[ "$same" = true ] && want=${want%]}',{"name":"score","datatype":"FP32","shape":[-1]},{"name":"anomaly","datatype":"BOOL","shape":[-1]}]'
	check "$m: V2 metadata" jqe --argjson i "[-1,$in]" --argjson o "$want" '.inputs[0].shape == $i and .outputs == $o' \
		<<<"$(curl -s "$U/v2/models/$m")"

	# ---- /v1: codes, images, PNG answers, from PNG, multipart and JSON ----
	check "$m: encode PNG" tensor_is "$(curl -s -H "Content-Type: image/png" --data-binary @"$P" "$R/encode")" 1 "$lat"
	check "$m: encode JSON" tensor_is "$(tensor 2 "$in" | curl -s -H "Content-Type: application/json" -d @- "$R/encode")" 2 "$lat"
	check "$m: encode f16" jqe --argjson l "$lat" '.shape == [1,$l] and .format == "f16" and (.data | length) == $l' \
		<<<"$(curl -s -H "Content-Type: image/png" --data-binary @"$P" "$R/encode?format=f16")"
	check "$m: decode" tensor_is "$(tensor 2 "$lat" | curl -s -H "Content-Type: application/json" -d @- "$R/decode")" 2 "$out"
	tensor 1 "$lat" | curl -s -H "Content-Type: application/json" -H "Accept: image/png" -o "$TMPD/d.png" -d @- "$R/decode"
	check "$m: decode PNG is ${oc}x${oh}x${ow}" png_is "$TMPD/d.png" "$oc" "$oh" "$ow"
	for op in reconstruct denoise transform; do
		check "$m: $op PNG" tensor_is "$(curl -s -H "Content-Type: image/png" --data-binary @"$P" "$R/$op")" 1 "$out"
		curl -s -H "Content-Type: image/png" -H "Accept: image/png" --data-binary @"$P" -o "$TMPD/r.png" "$R/$op"
		check "$m: $op answers a ${oc}x${oh}x${ow} PNG" png_is "$TMPD/r.png" "$oc" "$oh" "$ow"
	done
	check "$m: reconstruct multipart" tensor_is "$(curl -s -F "a=@$P;type=image/png" -F "b=@$P;type=image/png" "$R/reconstruct")" 2 "$out"
	check "$m: reconstruct JSON" tensor_is "$(tensor 1 "$in" | curl -s -H "Content-Type: application/json" -d @- "$R/reconstruct")" 1 "$out"
	check "$m: resize to the input's size" tensor_is "$(curl -s -H "Content-Type: image/png" --data-binary @"$TMPD/shrink.png" "$R/reconstruct?resize=true")" 1 "$out"

	# ---- anomaly: only where the reconstruction has the input's shape ----
	if [ "$same" = true ]; then
		check "$m: anomaly with maps" jqe --argjson s "[1,$ih,$iw]" --argjson n "$((ih * iw))" \
			'(.results | length) == 1 and .maps.shape == $s and (.maps.data | length) == $n' \
			<<<"$(curl -s -H "Content-Type: image/png" --data-binary @"$P" "$R/anomaly?map=true")"
		curl -s -H "Content-Type: image/png" -H "Accept: image/png" --data-binary @"$P" -o "$TMPD/h.png" "$R/anomaly?scale=3"
		check "$m: heatmap is the input's size times 3" png_is "$TMPD/h.png" 3 $((ih * 3)) $((iw * 3))
	else
		expect_error "$m: anomaly refused" 422 operation_unavailable -H "Content-Type: image/png" --data-binary @"$P" "$R/anomaly?map=true"
		check "$m: the refusal names both shapes" grep -qF "gives [$out] images for [$in] ones" "$BODY"
	fi

	# ---- V2: JSON, binary FP32 and BYTES, raw, the latent alone ----
	req="{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,$in],\"data\":$(halves "$ni")}]"
	a=$(infer "")
	check "$m: V2 JSON latent" tensor_is "$(jq -c '.outputs[] | select(.name == "latent")' <<<"$a")" 1 "$lat"
	check "$m: V2 JSON reconstruction" tensor_is "$(jq -c '.outputs[] | select(.name == "reconstruction")' <<<"$a")" 1 "$out"
	check "$m: V2 JSON outputs" jqe --argjson s "$same" '(.outputs | length) == (if $s then 4 else 2 end) and
		([.outputs[] | select(.name == "score" or .name == "anomaly") | .shape == [1] and (.data | length) == 1] | all)' <<<"$a"
	code=$(infer ',"outputs":[{"name":"score"}]' -o "$TMPD/e" -w '%{http_code}')
	if [ "$same" = true ]; then check "$m: V2 score alone" test "$code" = 200
	else check "$m: V2 score refused" jqe '.error | test("compares an image with its reconstruction")' "$TMPD/e"; fi
	check "$m: V2 latent alone" tensor_is "$(infer ',"outputs":[{"name":"latent"}]' | jq -c '.outputs[0]')" 1 "$lat"

	"$C" bytes "$P" "$P" > "$TMPD/pngs"
	hdr=$(jq -c -n --argjson n "$(stat -c %s "$TMPD/pngs")" '{inputs: [{name: "input", shape: [2], datatype: "BYTES", parameters: {binary_data_size: $n}}], parameters: {binary_data_output: true}}')
	curl -s -D "$TMPD/hb" -o "$TMPD/ab" -H "Inference-Header-Content-Length: ${#hdr}" \
		--data-binary @<(printf '%s' "$hdr"; cat "$TMPD/pngs") "$U/v2/models/$m/infer"
	hl=$(tr -d '\r' < "$TMPD/hb" | sed -n 's/^Inference-Header-Content-Length: //Ip')
	a=$("$C" decode "${hl:-0}" < "$TMPD/ab")
	check "$m: V2 binary latent" tensor_is "$(jq -c '.outputs[] | select(.name == "latent")' <<<"$a")" 2 "$lat"
	check "$m: V2 binary reconstruction" tensor_is "$(jq -c '.outputs[] | select(.name == "reconstruction")' <<<"$a")" 2 "$out"
	check "$m: V2 binary sizes" jqe --argjson l "$lat" --argjson o "$no" '[.outputs[] | .parameters.binary_data_size] ==
		([2 * $l * 4, 2 * $o * 4] + (if (.outputs | length) == 4 then [8, 2] else [] end))' <<<"$(head -c "${hl:-0}" "$TMPD/ab")"
	infer ',"outputs":[{"name":"latent","parameters":{"datatype":"FP16","binary_data":true}}]' -D "$TMPD/hb" -o "$TMPD/ab"
	hl=$(tr -d '\r' < "$TMPD/hb" | sed -n 's/^Inference-Header-Content-Length: //Ip')
	check "$m: V2 FP16 latent" jqe --argjson b "$((2 * lat))" --argjson l "$lat" \
		'.outputs[0].shape == [1,$l] and .outputs[0].datatype == "FP16" and .outputs[0].parameters.binary_data_size == $b' \
		<<<"$(head -c "${hl:-0}" "$TMPD/ab")"
	check "$m: V2 FP16 latent's bytes" test "$(stat -c %s "$TMPD/ab")" = $((${hl:-0} + 2 * lat))
	halves "$ni" | "$C" floats > "$TMPD/x.f32"
	a=$(curl -s -H "Inference-Header-Content-Length: 0" --data-binary @"$TMPD/x.f32" "$U/v2/models/$m/infer")
	check "$m: V2 raw FP32" tensor_is "$(jq -c '.outputs[] | select(.name == "reconstruction")' <<<"$a")" 1 "$out"
	a=$(curl -s -H "Inference-Header-Content-Length: 0" --data-binary @"$P" "$U/v2/models/$m/infer")
	check "$m: V2 raw PNG" tensor_is "$(jq -c '.outputs[] | select(.name == "reconstruction")' <<<"$a")" 1 "$out"
done

# aetrain compares a model's output with its input: it refuses these by name
mkdir -p "$TMPD/data" && "$K" png "$TMPD/data/0.png" 3x16x20
expect_fail "aetrain eval refuses an image-to-image model" "gives 1x8x12 images for 3x16x20 ones" \
	"$BUILD/aetrain" eval "$M/shrink.safetensors" "$TMPD/data"

check "the server is still up" test "$(curl -s -o /dev/null -w '%{http_code}' "$U/livez")" = 200
done_tests
