#!/usr/bin/env bash
# make compression: the autoencoder as a compressor, beside PNG and JPEG, on
# the test split. For each (model, data): bytes per image and PSNR of its code
# as f32, f16 and int8 (aetrain eval --codes), of PNG (lossless), and of JPEG
# (bench/jpeg_ref.py, Pillow) at the lowest quality whose PSNR reaches the
# int8 code's. Writes bench/results/compression-DATE.md.
#
#   LIMIT (test images per set, default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIMIT=${LIMIT:-2000}
out=bench/results/compression-$(date -u +%Y%m%dT%H%M%SZ).md
mkdir -p bench/results
{
	echo "# The code as a compressor ($(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
	echo
	echo "First $LIMIT test images of each set; PSNR of the mean squared error over them (pixels in [0, 1])."
	echo "The int8 code also needs the model's scale (16 floats, 64 bytes, once per model, not per image)."
	echo
	echo "| model | images | code f32 | code f16 | code int8 | PNG (lossless) | JPEG at the int8 code's PSNR | JPEG q1 | JPEG q75 |"
	echo "|---|---|---|---|---|---|---|---|---|"
} > "$out"
# cell FORMAT EVAL: "BYTES B, PSNR dB"
cell() { sed -n "s/^code_$1: bytes \([0-9]*\), mse [0-9.]*, psnr_db \([0-9.]*\)$/\1 B, \2 dB/p" <<<"$2"; }
for pair in mnist:mnist mnist-denoise:mnist fashion:fashion mnist:fashion; do
	model=${pair%%:*} data=${pair#*:}
	idx=data/$data/t10k-images-idx3-ubyte
	[ -e "$idx" ] || idx=$idx.gz
	[ -e "$idx" ] || { echo "compression: $idx is missing (make data)" >&2; exit 1; }
	ev=$("$BUILD"/aetrain eval "models/$model.safetensors" "data/$data" --codes --limit "$LIMIT" --noise none)
	jp=$(/usr/bin/python3 bench/jpeg_ref.py "$idx" "$LIMIT")
	p8=$(sed -n 's/^code_int8: .*psnr_db \([0-9.]*\)$/\1/p' <<<"$ev")
	png=$(sed -n 's/^png: bytes \([0-9.]*\) .*/\1/p' <<<"$ev")
	match=$(jq -r --argjson p "$p8" '[.qualities[] | select(.psnr_db >= $p)][0] // null
		| if . then "q\(.quality): \(.bytes | floor) B, \(.psnr_db * 1000 | round / 1000) dB" else "none reaches it" end' <<<"$jp")
	q() { jq -r --argjson q "$1" '.qualities[] | select(.quality == $q) | "\(.bytes | floor) B, \(.psnr_db * 1000 | round / 1000) dB"' <<<"$jp"; }
	echo "| $model | $data | $(cell f32 "$ev") | $(cell f16 "$ev") | $(cell int8 "$ev") | ${png%.*} B | $match | $(q 1) | $(q 75) |" >> "$out"
	echo "compression: $model on $data done" >&2
done
cat "$out"
echo "compression: wrote $out" >&2
