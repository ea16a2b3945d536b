#!/usr/bin/env bash
# Writes the committed seed corpora of the fuzz targets from real inputs:
# test digits as PNG, multipart and JSON requests, the hostile PNGs of the
# reliability tests, small model files and checkpoints trained by aetrain,
# IDX files raw and gzip. Run from the repository root after `make`; the
# output is committed (tests/fuzz/corpus/), so fuzzing needs none of this.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
T="$BUILD/aetrain"
C=tests/fuzz/corpus
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$C"
mkdir -p "$C"/{png,multipart,json,query,modelfile,idx,v2}
"$T" export tests/fixtures/digits --out "$TMP/d" --limit 3 --json "$TMP/d.json" >/dev/null

# png: digits, and each bomb (their length picks the decoding options)
cp "$TMP"/d/*.png "$C/png/"
for t in tEXt zTXt iCCP; do "$BUILD/tests/tools/pngbomb" chunk "$t" "$C/png/bomb-$t.png"; done
"$BUILD/tests/tools/pngbomb" idat 2 "$C/png/bomb-idat.png"

# multipart: the Content-Type line, then the body
{
	printf 'multipart/form-data; boundary=XB\n'
	for f in "$TMP"/d/*.png; do
		printf -- '--XB\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
		cat "$f"; printf '\r\n'
	done
	printf -- '--XB--\r\n'
} > "$C/multipart/three-digits"
{ printf 'multipart/form-data; boundary="a b"\n--a b\r\n\r\n'; cat "$TMP/d/00000.png"; printf '\r\n--a b--\r\n'; } > "$C/multipart/quoted"

# json: images flat, as rows, and codes (the length modulo 4 picks the operation)
jq -c '{shape: [1,784], data: .data[:784]}' "$TMP/d.json" > "$C/json/flat"
jq -c '{data: [.data[:784] | [range(0;28) as $r | .[$r*28:$r*28+28]]], shape: [1,28,28]}' "$TMP/d.json" > "$C/json/rows"
printf '{"shape":[2,5],"data":[[0.5,-1e3,2,0,1],[1e-7,0,0,0,3]],"note":"\\u00e9"}' > "$C/json/codes"
printf '{"shape":[1,5], "data":[0,0,0,0,0]}  ' > "$C/json/codes-ws"

# v2: 4 bytes of header length (ffffffff: none), then the body
v2() { printf '%b' "$1"; cat; }
jq -c '{id: "a", inputs: [{name: "input", shape: [1,784], datatype: "FP32", data: .data[:784]}], outputs: [{name: "score"}, {name: "latent", parameters: {binary_data: true}}]}' "$TMP/d.json" | v2 '\xff\xff\xff\xff' > "$C/v2/json-flat"
jq -c '{inputs: [{name: "input", shape: [1,1,28,28], datatype: "FP32", data: [[.data[:784] | [range(0;28) as $r | .[$r*28:$r*28+28]]]]}], parameters: {quantile: 0.5}}' "$TMP/d.json" | v2 '\xff\xff\xff\xff' > "$C/v2/json-nested"
hdr='{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":'$(( $(stat -c %s "$TMP/d/00000.png") + 4 ))'}}],"parameters":{"binary_data_output":true}}'
{ printf '%b' "$(printf '\\x%02x\\x%02x\\x00\\x00' $(( ${#hdr} % 256 )) $(( ${#hdr} / 256 )))"; printf '%s' "$hdr"; "$BUILD/tests/tools/v2codec" bytes "$TMP/d/00000.png"; } > "$C/v2/bytes-png"
{ printf '\x00\x00\x00\x00'; cat "$TMP/d/00000.png"; } > "$C/v2/raw-png"
{ printf '\x00\x00\x00\x00'; jq -c '.data[:784]' "$TMP/d.json" | "$BUILD/tests/tools/v2codec" floats; } > "$C/v2/raw-fp32"

# query: the first byte picks the operation
printf '\x00resize=1&invert=false' > "$C/query/encode"
printf '\x04threshold=0.02' > "$C/query/anomaly-threshold"
printf '\x04quantile=0.999&resize=yes' > "$C/query/anomaly-quantile"
printf '\x01resize=1' > "$C/query/decode"
printf '\x02invert=\xff\xfe&x=1' > "$C/query/bad-bytes"

# modelfile: a small dense model (format 2), its checkpoint, a shipped-format-1 model's head
"$T" train --data tests/fixtures/digits --arch dense --hidden 2 --latent 1 --epochs 1 --limit 40 --quiet \
	--out "$TMP/m.safetensors" >/dev/null
cp "$TMP/m.safetensors" "$C/modelfile/dense"
"$T" train --data tests/fixtures/digits --arch dense --hidden 2 --latent 1 --epochs 400 --limit 40 --quiet \
	--checkpoint-every 2 --out "$TMP/k.safetensors" >/dev/null & pid=$!
sleep 0.3; kill -KILL $pid; wait $pid 2>/dev/null || true
cp "$TMP/k.ckpt" "$C/modelfile/checkpoint"
head -c 4096 models/mnist.safetensors > "$C/modelfile/format1-head"

# idx: labels and a few images, raw and gzip
head -c 108 tests/fixtures/digits/t10k-labels-idx1-ubyte > "$C/idx/labels"
gzip -9 -c "$C/idx/labels" > "$C/idx/labels.gz"
{ printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c'
  dd if=tests/fixtures/digits/t10k-images-idx3-ubyte bs=1 skip=16 count=1568 status=none; } > "$C/idx/images"
gzip -9 -c "$C/idx/images" > "$C/idx/images.gz"
du -sh "$C"/*
