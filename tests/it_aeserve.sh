#!/usr/bin/env bash
# aeserve as our users meet it: the real server on loopback with the shipped
# models, spoken to with curl. Every route, every input form, every error of
# the API with its status and error code, PngSuite, the quality promises
# (anomaly verdicts, denoising), queue overflow, timeouts, slow clients,
# metrics, the access log, start-up failures and a clean SIGTERM.
# shellcheck disable=SC2016 # jq programs, whose $names are jq's
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
S="$BUILD/aeserve"
T="$BUILD/aetrain"

# expect STATUS CODE what curl-args...: expect_error, the body kept for the
# schema check at the end.
expect() { expect_error "$3" "$1" "$2" "${@:4}"; keep Error "$BODY"; }

# ---- the contract: openapi.yaml is valid, responses are saved to check against it ----
check "openapi.yaml is valid OpenAPI 3.1" node tests/openapi/check.mjs spec openapi.yaml
mkdir -p "$TMPD"/resp/{Error,Tensor,Anomaly,Model,ModelList,Status}
NRESP=0
keep() { cp "$2" "$TMPD/resp/$1/$((++NRESP)).json"; }

# ---- test inputs: real test-split images ----
"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 20 --json "$TMPD/digits.json" >/dev/null
"$T" export tests/fixtures/digits --out "$TMPD/noisy" --limit 100 --noise gaussian:0.5:0.5 --seed 7 --json "$TMPD/noisy.json" >/dev/null
"$T" export tests/fixtures/digits --out "$TMPD/clean" --limit 100 --json "$TMPD/clean.json" >/dev/null
"$T" export tests/fixtures/fashion --out "$TMPD/fashion" --limit 20 >/dev/null
D0="$TMPD/digits/00000.png"

start_server "$TMPD/log" --default mnist --log-format json --body-limit 2097152 models/ || exit 1
PORT=$SRV_PORT URL=$SRV_URL

# ---- operations ----
expect_status "livez" 200 "$URL/livez"
check "livez says alive" jqe '.status == "alive"' "$BODY"
expect_status "readyz" 200 "$URL/readyz"
check "readyz says ready" jqe '.status == "ready"' "$BODY"
curl -s "$URL/v1/models" > "$TMPD/models.json"
check "models lists the shipped three" jqe '[.models[].name] | sort == ["fashion","mnist","mnist-denoise"]' "$TMPD/models.json"
check "default model" jqe '.default == "mnist"' "$TMPD/models.json"
curl -s "$URL/v1/models/mnist-denoise" > "$TMPD/m.json"
mapfile -t OPS < <(jq -r '.operations[]' "$TMPD/m.json")
check "openapi.yaml has the routes of the server's operations (${OPS[*]})" \
	node tests/openapi/check.mjs operations openapi.yaml "${OPS[@]}"
check "model metadata" jqe '.input_shape == [1,28,28] and .latent == 16 and .task == "denoise" and .noise == "gaussian:0.5:0.5" and (.checksum | startswith("crc32:")) and .error_quantiles.p99 > 0 and .training.epochs == 20' "$TMPD/m.json"
expect 404 model_not_found "unknown model metadata" "$URL/v1/models/nope"

# ---- inputs: PNG, multipart, JSON in each shape ----
P=(-H 'Content-Type: image/png')
curl -s "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/encode" > "$TMPD/e1.json"
check "encode png" jqe '.shape == [1,16] and (.data | length) == 16' "$TMPD/e1.json"
curl -s "${P[@]}" --data-binary @"$D0" "$URL/v1/encode" > "$TMPD/e0.json"
check "default model route" cmp -s "$TMPD/e0.json" "$TMPD/e1.json"
curl -s -F image=@"$D0" -F image=@"$TMPD/digits/00001.png" "$URL/v1/models/mnist/encode" > "$TMPD/e2.json"
check "multipart two images" jqe '.shape == [2,16] and (.data | length) == 32' "$TMPD/e2.json"
check "multipart first equals single" bash -c "[ \"\$(jq -c '.data[:16]' '$TMPD/e2.json')\" = \"\$(jq -c '.data' '$TMPD/e1.json')\" ]"
jq -c '{shape: [1,1,28,28], data: .data[:784]}' "$TMPD/digits.json" > "$TMPD/j4.json"
jq -c '{shape: [1,28,28], data: [.data[:784] | [range(0;28) as $r | .[$r*28:$r*28+28]]]}' "$TMPD/digits.json" > "$TMPD/j3.json"
jq -c '{shape: [1,784], data: [.data[:784]]}' "$TMPD/digits.json" > "$TMPD/j2.json"
for f in j4 j3 j2; do
	curl -s -H 'Content-Type: application/json' --data-binary @"$TMPD/$f.json" "$URL/v1/models/mnist/encode" > "$TMPD/o$f.json"
	check "json $f matches png" jqe --slurpfile a "$TMPD/e1.json" '[.data, $a[0].data] | transpose | map(.[0]-.[1] | fabs) | max < 1e-4' "$TMPD/o$f.json"
done
jq -c '{shape: [1,16], data: .data}' "$TMPD/e1.json" > "$TMPD/codes.json"
curl -s -H 'Content-Type: application/json' --data-binary @"$TMPD/codes.json" "$URL/v1/models/mnist/decode" > "$TMPD/dec.json"
check "decode" jqe '.shape == [1,1,28,28] and (.data | length) == 784' "$TMPD/dec.json"
curl -s "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/reconstruct" > "$TMPD/rec.json"
check "decode(encode(x)) == reconstruct(x)" jqe --slurpfile a "$TMPD/rec.json" '[.data, $a[0].data] | transpose | map(.[0]-.[1] | fabs) | max < 1e-4' "$TMPD/dec.json"
curl -s -o "$TMPD/out.png" -D "$TMPD/h" -H 'Accept: image/png' "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/reconstruct"
check "reconstruct returns a PNG" grep -qi 'content-type: image/png' "$TMPD/h"
check "the PNG is 28x28" bash -c "[ \"\$(od -An -tx1 -j16 -N8 '$TMPD/out.png' | tr -d ' \n')\" = 0000001c0000001c ]"
curl -s -o "$TMPD/out2.png" -H 'Accept: image/png' -H 'Content-Type: application/json' --data-binary @"$TMPD/codes.json" "$URL/v1/models/mnist/decode"
check "decode returns a PNG" bash -c "head -c 4 '$TMPD/out2.png' | grep -q PNG"
# ?invert=1 reconstructs 1 - x: the answer for the inverted pixels sent as
# JSON, and not the answer for x itself.
D3="$TMPD/digits/00003.png"
curl -s "${P[@]}" --data-binary @"$D3" "$URL/v1/models/mnist/reconstruct?invert=1" > "$TMPD/inv.json"
curl -s "${P[@]}" --data-binary @"$D3" "$URL/v1/models/mnist/reconstruct" > "$TMPD/noinv.json"
"$BUILD/tests/tools/v2codec" pixels "$D3" | jq -c '{shape: [1,784], data: [map(1 - .)]}' |
	curl -s -H 'Content-Type: application/json' --data-binary @- "$URL/v1/models/mnist/reconstruct" > "$TMPD/inv_ref.json"
check "invert: the reconstruction of 1 - x" jqe --slurpfile a "$TMPD/inv_ref.json" \
	'.shape == [1,1,28,28] and ([.data, $a[0].data] | transpose | map(.[0]-.[1] | fabs) | max < 1e-4)' "$TMPD/inv.json"
check "invert: not the reconstruction of x" jqe --slurpfile a "$TMPD/noinv.json" \
	'[.data, $a[0].data] | transpose | map(.[0]-.[1] | fabs) | max > 0.1' "$TMPD/inv.json"
curl -s "${P[@]}" --data-binary @tests/fixtures/pngsuite/basn2c08.png "$URL/v1/models/mnist/encode?resize=true" > "$TMPD/rs.json"
check "resize an RGB 32x32 PNG" jqe '.shape == [1,16]' "$TMPD/rs.json"

# ---- quality: anomaly verdicts and denoising ----
curl -s "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/anomaly" > "$TMPD/a_digit.json"
curl -s "${P[@]}" --data-binary @"$TMPD/fashion/00000.png" "$URL/v1/models/mnist/anomaly" > "$TMPD/a_fashion.json"
check "a test digit is normal for mnist" jqe '.results[0].anomaly == false and .results[0].score < .threshold' "$TMPD/a_digit.json"
check "a Fashion-MNIST image is an anomaly for mnist" jqe '.results[0].anomaly == true and .results[0].score > .threshold and .results[0].percentile >= 99' "$TMPD/a_fashion.json"
check "threshold is the model's p99" jqe '.threshold_quantile == 0.99' "$TMPD/a_digit.json"
fd=(); for f in "$TMPD"/digits/*.png; do fd+=(-F "image=@$f"); done
ff=(); for f in "$TMPD"/fashion/*.png; do ff+=(-F "image=@$f"); done
nd=$(curl -s "${fd[@]}" "$URL/v1/models/mnist/anomaly" | jq '[.results[] | select(.anomaly)] | length')
nf=$(curl -s "${ff[@]}" "$URL/v1/models/mnist/anomaly" | jq '[.results[] | select(.anomaly)] | length')
echo "anomaly verdicts from mnist: $nd of 20 test digits, $nf of 20 Fashion-MNIST images"
check "at most 2 of 20 digits flagged" test "$nd" -le 2
check "at least 18 of 20 fashion images flagged" test "$nf" -ge 18
curl -s "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/anomaly?quantile=0.5" > "$TMPD/q.json"
check "anomaly ?quantile" jqe --slurpfile m <(curl -s "$URL/v1/models/mnist") '(.threshold - $m[0].error_quantiles.p50 | fabs) < 1e-6' "$TMPD/q.json"
curl -s "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/anomaly?threshold=0.000001" > "$TMPD/t.json"
check "anomaly ?threshold" jqe '.threshold == 0.000001 and .threshold_quantile == null and .results[0].anomaly == true' "$TMPD/t.json"
expect 400 invalid_parameter "quantile out of range" "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/anomaly?quantile=2"
expect 400 invalid_parameter "threshold not a number" "${P[@]}" --data-binary @"$D0" "$URL/v1/models/mnist/anomaly?threshold=abc"
curl -s -H 'Content-Type: application/json' --data-binary @"$TMPD/noisy.json" "$URL/v1/models/mnist-denoise/denoise" > "$TMPD/den.json"
mse=$(jq -n --slurpfile a "$TMPD/den.json" --slurpfile b "$TMPD/clean.json" '[$a[0].data, $b[0].data] | transpose | map((.[0]-.[1]) * (.[0]-.[1])) | add / length')
noisy=$(jq -n --slurpfile a "$TMPD/noisy.json" --slurpfile b "$TMPD/clean.json" '[$a[0].data, $b[0].data] | transpose | map((.[0]-.[1]) * (.[0]-.[1])) | add / length')
echo "denoise: 100 noisy test digits (gaussian 0.5/0.5): MSE to clean $noisy before, $mse after"
check "denoised MSE <= 0.020 (got $mse)" jqe -n "$mse <= 0.020"

curl -s "$URL/livez" > "$TMPD/lz.json"; keep Status "$TMPD/lz.json"
curl -s "$URL/readyz" > "$TMPD/rz.json"; keep Status "$TMPD/rz.json"
keep ModelList "$TMPD/models.json"; keep Model "$TMPD/m.json"
for f in e1 e2 oj4 oj3 oj2 dec rec inv rs den; do keep Tensor "$TMPD/$f.json"; done
for f in a_digit a_fashion q t; do keep Anomaly "$TMPD/$f.json"; done

# ---- errors: status and code ----
expect 404 not_found "unknown route" "$URL/v3/nothing"
expect 404 not_found "unknown op" -X POST "$URL/v1/models/mnist/explode"
expect 404 model_not_found "unknown model" "${P[@]}" --data-binary @"$D0" "$URL/v1/models/nope/encode"
expect 405 method_not_allowed "GET on an inference route" "$URL/v1/encode"
check "405 says Allow: POST" grep -qi '^allow: POST' "$HEADERS"
expect 405 method_not_allowed "POST on metrics" -X POST "$URL/metrics"
head -c 2200000 /dev/zero > "$TMPD/big"
expect 413 body_too_large "body over the limit" "${P[@]}" --data-binary @"$TMPD/big" "$URL/v1/encode"
# Without a Content-Length the server stores up to the limit, discards the
# rest and answers 413 at the end of the upload.
expect 413 body_too_large "chunked body over the limit" "${P[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$TMPD/big" "$URL/v1/encode"
expect 415 unsupported_media_type "text/plain" -H 'Content-Type: text/plain' --data-binary 'hello' "$URL/v1/encode"
expect 415 unsupported_media_type "no content type" -X POST --data-binary @"$D0" -H 'Content-Type:' "$URL/v1/encode"
expect 415 unsupported_media_type "decode takes JSON only" "${P[@]}" --data-binary @"$D0" "$URL/v1/decode"
expect 400 empty_body "empty body" "${P[@]}" -X POST "$URL/v1/encode"
J=(-H 'Content-Type: application/json')
expect 400 invalid_json "malformed JSON" "${J[@]}" --data-binary '{"shape": [1,784], "data": [0.1,' "$URL/v1/encode"
expect 400 invalid_json "NaN is not JSON" "${J[@]}" --data-binary '{"shape": [1,1], "data": [NaN]}' "$URL/v1/encode"
expect 400 invalid_json "huge number overflows" "${J[@]}" --data-binary '{"shape": [1,1], "data": [1e999]}' "$URL/v1/encode"
expect 400 invalid_json "not an object" "${J[@]}" --data-binary '[1,2,3]' "$URL/v1/encode"
expect 400 invalid_json "string in data" "${J[@]}" --data-binary "$(jq -c '.data[0] = "x"' "$TMPD/j2.json")" "$URL/v1/encode"
expect 400 shape_mismatch "data shorter than shape" "${J[@]}" --data-binary "$(jq -c '.data[0] |= .[:783]' "$TMPD/j2.json")" "$URL/v1/encode"
expect 400 invalid_shape "shape of one dimension" "${J[@]}" --data-binary '{"shape": [784], "data": []}' "$URL/v1/encode"
expect 400 invalid_shape "negative dimension" "${J[@]}" --data-binary '{"shape": [1,-784], "data": []}' "$URL/v1/encode"
expect 422 wrong_shape "wrong shape for the model" "${J[@]}" --data-binary '{"shape": [1,2,2], "data": [0,0,0,0]}' "$URL/v1/encode"
expect 422 wrong_shape "wrong code size for decode" "${J[@]}" --data-binary '{"shape": [1,3], "data": [0,0,0]}' "$URL/v1/decode"
expect 422 value_out_of_range "value above 1" "${J[@]}" --data-binary "$(jq -c '.data[0][5] = 1.5' "$TMPD/j2.json")" "$URL/v1/encode"
expect 422 value_out_of_range "negative value" "${J[@]}" --data-binary "$(jq -c '.data[0][5] = -0.1' "$TMPD/j2.json")" "$URL/v1/encode"
check "out-of-range message names the index" grep -q 'data\[5\] = -0.1' "$TMPD/body"
head -c 100 "$D0" > "$TMPD/trunc.png"
expect 400 invalid_png "truncated PNG" "${P[@]}" --data-binary @"$TMPD/trunc.png" "$URL/v1/encode"
expect 400 invalid_png "not a PNG" "${P[@]}" --data-binary 'GIF89a..........................' "$URL/v1/encode"
expect 422 wrong_size "PNG of another size" "${P[@]}" --data-binary @tests/fixtures/pngsuite/basn0g08.png "$URL/v1/encode"
check "wrong-size message names the expected size" grep -q 'takes 28x28' "$TMPD/body"
# a valid header that declares 100000 x 100000 pixels, and nothing else of note
{ head -c 16 "$D0"; printf '\x00\x01\x86\xa0\x00\x01\x86\xa0'; tail -c +25 "$D0"; } > "$TMPD/huge.png"
expect 422 image_too_large "huge PNG, no resize" "${P[@]}" --data-binary @"$TMPD/huge.png" "$URL/v1/encode"
expect 422 image_too_large "huge PNG with resize: refused before decoding" "${P[@]}" --data-binary @"$TMPD/huge.png" "$URL/v1/encode?resize=1"
expect 400 invalid_png "multipart with a corrupt part" -F image=@"$D0" -F image=@tests/fixtures/pngsuite/xcsn0g01.png "$URL/v1/encode"
check "the message names part 2" grep -q 'part 2' "$TMPD/body"
expect 400 invalid_multipart "multipart without boundary" -H 'Content-Type: multipart/form-data' --data-binary 'x' "$URL/v1/encode"

# ---- PngSuite: valid files accepted or refused only for size; corrupt ones 400 ----
acc=0; sized=0; refused=0; wrong=0
for f in tests/fixtures/pngsuite/*.png; do
	n=$(basename "$f")
	st=$(http_status "${P[@]}" --data-binary @"$f" "$URL/v1/encode")
	str=$(http_status "${P[@]}" --data-binary @"$f" "$URL/v1/encode?resize=1")
	case "$n" in
		x*) if [ "$st" = 400 ] && [ "$str" = 400 ]; then refused=$((refused + 1))
		    else wrong=$((wrong + 1)); echo "corrupt $n: $st/$str" >&2; fi ;;
		*) if [ "$str" = 200 ] && { [ "$st" = 200 ] || [ "$st" = 422 ]; }; then
			[ "$st" = 422 ] && sized=$((sized + 1)) || acc=$((acc + 1))
		   else wrong=$((wrong + 1)); echo "valid $n: $st/$str" >&2; fi ;;
	esac
done
echo "PngSuite: $acc accepted, $sized refused for size only (422; accepted with ?resize), $refused corrupt refused (400)"
check "PngSuite: every file answered as it should" test "$wrong" -eq 0
check "PngSuite: 14 corrupt files refused" test "$refused" -eq 14

# ---- concurrency: batching mixes nobody's data ----
out=$("$BUILD"/tests/tools/hammer "$PORT" /v1/models/mnist/reconstruct 64 10 "$TMPD"/digits/0000*.png)
rc=$?
echo "$out"
check "64 clients, 10 s, reconstruct: no error, no mismatch (rc $rc)" test "$rc" -eq 0
out=$("$BUILD"/tests/tools/hammer "$PORT" /v1/models/mnist/encode 64 3 "$TMPD"/digits/0001*.png)
echo "$out"
check "64 clients, encode: no error, no mismatch" grep -q ' 0 errors, 0 mismatches' <<<"$out"

# ---- metrics and the access log ----
curl -s "$URL/metrics" > "$TMPD/metrics"
check "metrics: requests by route and status" grep -qE '^aeserve_http_requests_total\{route="encode",status="200"\} [1-9]' "$TMPD/metrics"
check "metrics: 4xx counted" grep -qE '^aeserve_http_requests_total\{route="encode",status="415"\} [1-9]' "$TMPD/metrics"
check "metrics: latency histogram" grep -qE '^aeserve_http_request_duration_seconds_bucket\{route="reconstruct",le="\+Inf"\} [1-9]' "$TMPD/metrics"
check "metrics: latency sum in seconds" grep -qE '^aeserve_http_request_duration_seconds_sum\{route="encode"\} [0-9.e+-]+$' "$TMPD/metrics"
check "metrics: batch-size histogram" grep -qE '^aeserve_batch_size_count\{model="mnist"\} [1-9]' "$TMPD/metrics"
check "metrics: batches formed under load" bash -c "awk '/^aeserve_batch_size_sum\{model=\"mnist\"\}/{s=\$2} /^aeserve_batch_size_count\{model=\"mnist\"\}/{c=\$2} END{exit !(s/c > 1.5)}' '$TMPD/metrics'"
check "metrics: queue depth" grep -qE '^aeserve_queue_depth\{model="mnist"\} 0' "$TMPD/metrics"
check "metrics: model info with checksum" grep -qE '^aeserve_model_info\{model="mnist",checksum="crc32:[0-9a-f]{8}"' "$TMPD/metrics"
check "metrics: TYPE lines" test "$(grep -c '^# TYPE' "$TMPD/metrics")" -ge 5
check "access log: one JSON line per request" jqe -s 'map(select(.path == "/v1/models/nope/encode")) | length == 1 and (.[0] | .status == 404 and .method == "POST" and .bytes > 0 and .duration_s >= 0)' "$TMPD/log"

# ---- overload: a full queue answers 503 with Retry-After at once ----
# One worker and requests of 2,400 PNG parts: decoding them takes the
# HTTP side ~30 ms, inference ~0.5 s, so the queue is full while the rest
# arrive. (JSON bodies this size parse about as fast as we infer: too close.)
start_server "$TMPD/log2" --workers 1 --queue 1 --max-batch 1 --batch-delay-us 0 --body-limit 100000000 --log-format none models/mnist.safetensors || exit 1
"$T" export tests/fixtures/digits --split train --out "$TMPD/many" --limit 300 --json "$TMPD/many300.json" >/dev/null
jq -c '{shape: [1200, 1, 28, 28], data: (.data + .data + .data + .data)}' "$TMPD/many300.json" > "$TMPD/many.json"
for _ in 1 2 3 4 5 6 7 8; do
	for f in "$TMPD"/many/*.png; do
		printf -- '--BOUNDARY\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
		cat "$f"
		printf '\r\n'
	done
done > "$TMPD/many.form"
printf -- '--BOUNDARY--\r\n' >> "$TMPD/many.form"
cpids=()
for i in 1 2 3 4 5 6 7 8 9 10; do
	curl -s -m 60 -o "$TMPD/ov$i" -D "$TMPD/ovh$i" -w '%{http_code}\n' -H 'Content-Type: multipart/form-data; boundary=BOUNDARY' --data-binary @"$TMPD/many.form" "$SRV_URL/v1/reconstruct" > "$TMPD/ovs$i" &
	cpids+=($!)
done
wait "${cpids[@]}"
n503=$(cat "$TMPD"/ovs* | grep -c 503)
echo "overload: $(cat "$TMPD"/ovs* | tr '\n' ' ')"
check "some requests got 503" test "$n503" -ge 1
check "503 carries Retry-After" bash -c "grep -li '^retry-after: 1' '$TMPD'/ovh* | head -1 | grep -q ."
check "503 body is the overloaded error" bash -c "cat '$TMPD'/ov* | grep -q '\"code\":\"overloaded\"'"

# ---- timeout: work past its deadline is skipped and answered 504 ----
# One worker, batches of one image: two requests of 1,200 images each sent
# together; whichever queues second waits out the other's ~0.2 s forward
# pass, past its 50 ms deadline (which starts when its body is complete).
start_server "$TMPD/log3" --workers 1 --max-batch 1 --timeout-ms 50 --body-limit 100000000 --log-format none models/mnist.safetensors || exit 1
for i in 1 2; do
	curl -s -o "$TMPD/to$i" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$TMPD/many.json" \
		"$SRV_URL/v1/reconstruct" > "$TMPD/tos$i" &
	cpids[i]=$!
done
wait "${cpids[1]}" "${cpids[2]}"
check "deadline passed: one of two requests queued behind the other got 504 ($(cat "$TMPD"/tos1)/$(cat "$TMPD"/tos2))" \
	bash -c "cat '$TMPD'/tos1 '$TMPD'/tos2 | grep -q 504"
for i in 1 2; do [ "$(cat "$TMPD/tos$i")" = 504 ] && cp "$TMPD/to$i" "$TMPD/body"; done
check "504 body is the timeout error" jqe '.error.code == "timeout"' "$TMPD/body"
cp "$TMPD/body" "$TMPD/resp/Error/$((++NRESP)).json"

# ---- slow clients are dropped ----
start_server "$TMPD/log4" --conn-timeout 1 --log-format none models/mnist.safetensors || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$SRV_PORT"
printf 'POST /v1/encode HTTP/1.1\r\nHost: x\r\n' >&3
t0=$(date +%s%N)
timeout 5 cat <&3 >/dev/null; rc=$?
exec 3<&-
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
check "a client that stalls mid-headers is disconnected (after ${dt} ms)" test "$rc" -eq 0 -a "$dt" -lt 4000

# ---- the connection count is bounded ----
start_server "$TMPD/log5" --conn-limit 2 --log-format none models/mnist.safetensors || exit 1
P5=$SRV_PORT
exec 4<>"/dev/tcp/127.0.0.1/$P5" 5<>"/dev/tcp/127.0.0.1/$P5"
sleep 0.2
# Past the limit libmicrohttpd stops accepting: the third client is not
# served (it waits in the kernel's backlog) while the two are held.
curl -s -m 1 -o /dev/null "http://127.0.0.1:$P5/livez"; rc=$?
check "a connection past --conn-limit is not served (curl rc $rc)" test "$rc" -eq 28
exec 4<&- 5<&-
sleep 0.2

# ---- a model named at the length limit (63 characters) is listed whole ----
LONG=$(printf 'm%.0s' $(seq 63))
mkdir -p "$TMPD/long" && cp models/mnist.safetensors "$TMPD/long/$LONG.safetensors"
start_server "$TMPD/log6" --log-format none "$TMPD/long" || exit 1
check "a 63-character model name in /v1/models" jqe --arg n "$LONG" '.default == $n and .models[0].name == $n' <(curl -s "$SRV_URL/v1/models")
check "served again once connections close" curl -sf -m 3 -o /dev/null "http://127.0.0.1:$P5/livez"

# ---- start-up failures and options ----
head -c 1000 models/mnist.safetensors > "$TMPD/broken.safetensors"
expect_fail "a model that fails to load stops the start" "model 'broken' failed to load" "$S" --port 0 models/mnist.safetensors "$TMPD/broken.safetensors"
expect_fail "no models" "name at least one model" "$S"
expect_fail "bad port" "--port: 65536 is out of range" "$S" --port 65536 models/
expect_fail "bad address" "--addr: 'localhost' is not an IPv4 or IPv6 address" "$S" --addr localhost models/
expect_fail "bad log format" "--log-format: 'xml'" "$S" --log-format xml models/
expect_fail "bad default" "no model named 'nope'" "$S" --port 0 --default nope models/
expect_fail "folder without models" "no .safetensors model files" "$S" --port 0 "$TMPD/digits"
for o in --addr --port --reuse-port --default --http-threads --workers --max-batch --batch-delay-us --queue --body-limit \
	--timeout-ms --conn-limit --per-client-limit --header-timeout --body-timeout --conn-timeout --drain-delay --drain-timeout --log-format \
	--api-keys --metrics-public --tls-cert --tls-key --drift-window; do
	check "aeserve --help documents $o" bash -c "'$S' --help | grep -q -- '$o '"
done

# ---- every saved response matches its schema in openapi.yaml ----
for k in Error Tensor Anomaly Model ModelList Status; do
	bodies=("$TMPD/resp/$k"/*.json)
	check "responses match openapi.yaml schema $k (${#bodies[@]} bodies)" \
		node tests/openapi/check.mjs response openapi.yaml "$k" "$TMPD"/resp/$k/*.json
done

# ---- SIGTERM: drains and exits 0 ----
stop_server "${PIDS[0]}"
check "SIGTERM exits 0 (rc $RC)" test "$RC" -eq 0
check "SIGTERM logged the drain" grep -q 'draining' "$TMPD/log.err"

done_tests
