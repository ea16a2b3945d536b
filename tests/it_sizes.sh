#!/usr/bin/env bash
# Models of any size and channel count, end to end: aetrain takes the
# input's size from the data (28x28 gray digits, 64x64 RGB patches of
# photographs, 48x64 ones), evaluates, and aeserve serves each, PNG in and
# PNG out of the model's size and channels. A size the conv preset cannot
# take is refused naming the sizes that work; --resize resamples (and the
# model remembers it); photographs of mixed sizes and every PNG colour type
# make one set.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T=$BUILD/aetrain
PH=tests/fixtures/photos

"$T" patches "$PH"/*.png --size 64x64 --stride 16 --out "$TMPD/p64" >/dev/null
"$T" patches "$PH"/*.png --size 48x64 --stride 16 --out "$TMPD/p48x64" >/dev/null
"$T" patches "$PH"/*.png --size 30x30 --stride 20 --out "$TMPD/p30" >/dev/null
check "patches: 112 of 64x64 from the three photographs" test "$(find "$TMPD/p64" -name "*.png" | wc -l)" = 112
check "patches are what they say" bash -c "file '$TMPD/p48x64/coffee-0016-0032.png' | grep -q '64 x 48, 8-bit/color RGB'"

# train DIR NAME CHANNELS [options]: a model of the data's size.
train() {
	local data=$1 name=$2 c=$3; shift 3
	"$T" train --data "$data" --channels "$c" --epochs 4 --quiet --out "$TMPD/$name.safetensors" "$@" >/dev/null
}
check "28x28 gray digits train" train tests/fixtures/digits d28 1 --limit 200
check "64x64 RGB photographs train" train "$TMPD/p64" rgb64 3
check "48x64 RGB photographs train" train "$TMPD/p48x64" rgb48x64 3

# eval: the model's MSE and PSNR on its data, better than the untrained model's.
for m in rgb64:p64 rgb48x64:p48x64; do
	"$T" train --data "$TMPD/${m#*:}" --channels 3 --epochs 1 --limit 32 --quiet --out "$TMPD/${m%%:*}-1.safetensors" >/dev/null
	a=$("$T" eval "$TMPD/${m%%:*}.safetensors" "$TMPD/${m#*:}" | sed -n 's/^mse: //p')
	b=$("$T" eval "$TMPD/${m%%:*}-1.safetensors" "$TMPD/${m#*:}" | sed -n 's/^mse: //p')
	check "${m%%:*}: eval after 4 epochs ($a) beats 1 epoch on 32 images ($b)" awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > 0 && a < b) }'
done
check "eval says so when the sizes differ" bash -c "'$T' eval '$TMPD/rgb64.safetensors' '$TMPD/p48x64' 2>&1 >/dev/null | grep -q 'images are 48x64 (height x width), the model takes 64x64: --resize 64x64'"

# A size the conv preset cannot take: refused, naming the sizes that work.
expect_fail "30x30 refused with the nearest sizes" "the nearest sizes that work are 28x28 and 32x32 (--resize HxW" \
	"$T" train --data "$TMPD/p30" --channels 3 --epochs 1 --out "$TMPD/no.safetensors"
check "and no model file written" test ! -e "$TMPD/no.safetensors"
expect_fail "--resize takes HxW" "--resize: 'big' is not HEIGHTxWIDTH" "$T" train --data "$TMPD/p30" --resize big --out "$TMPD/no.safetensors"
check "--resize 32x32 trains it" train "$TMPD/p30" r32 3 --resize 32x32
check "the model remembers the resize" bash -c "'$T' eval '$TMPD/r32.safetensors' '$TMPD/p30' | grep -q '^mse: '"

# Photographs of different sizes and every PNG colour type (gray, gray+alpha,
# RGB, RGBA): one set with --resize, converted to the channels asked.
mkdir -p "$TMPD/mixed"
cp "$PH"/*.png tests/fixtures/pngsuite/basn0g08.png tests/fixtures/pngsuite/basn4a08.png \
	tests/fixtures/pngsuite/basn2c08.png tests/fixtures/pngsuite/basn6a08.png "$TMPD/mixed/"
expect_fail "mixed sizes without --resize" "--resize HxW resamples them all" \
	"$T" train --data "$TMPD/mixed" --channels 3 --out "$TMPD/no.safetensors"
check "mixed sizes and colour types with --resize 32x32, RGB" train "$TMPD/mixed" mixed3 3 --resize 32x32 --val 0.3
check "the same, gray" train "$TMPD/mixed" mixed1 1 --resize 32x32 --val 0.3

# Image-to-image: the model is given a transform of each image (ae/transform.h).
check "gray -> colour trains" train "$TMPD/p64" col 3 --input gray
ev=$("$T" eval "$TMPD/col.safetensors" "$TMPD/p64")
check "eval gives the gray input's own error beside the model's" bash -c "grep -q '^input: gray' <<<\"\$1\" && grep -q '^psnr_input_db: ' <<<\"\$1\"" _ "$ev"
check "downscale:4 (super-resolution) trains" train "$TMPD/p64" sr 3 --input downscale:4
check "mask:16 (inpainting) trains" train "$TMPD/p64" inpaint 3 --input mask:16
expect_fail "gray needs colour" "gray input needs colour images" "$T" train --data "$TMPD/p64" --input gray --out "$TMPD/no.safetensors"
expect_fail "downscale must divide the sides" "downscale:5 needs sides divisible by 5" \
	"$T" train --data "$TMPD/p64" --channels 3 --input downscale:5 --out "$TMPD/no.safetensors"
expect_fail "an unknown transform" "'sepia' is not none, gray" "$T" train --data "$TMPD/p64" --input sepia --out "$TMPD/no.safetensors"

# Explicit pairs: gray patches given, the colour ones of the same names given back.
"$T" patches "$PH"/*.png --size 32x32 --stride 16 --channels 1 --out "$TMPD/pin" >/dev/null
"$T" patches "$PH"/*.png --size 32x32 --stride 16 --out "$TMPD/pout" >/dev/null
check "pairs (--targets) train" train "$TMPD/pin" pairs 3 --targets "$TMPD/pout"
ev=$("$T" eval "$TMPD/pairs.safetensors" "$TMPD/pin" --targets "$TMPD/pout")
check "eval of a pairs model against its targets" bash -c "grep -q '^input: pairs' <<<\"\$1\" && grep -q '^psnr_db: ' <<<\"\$1\"" _ "$ev"
expect_fail "eval of a pairs model needs the targets" "was trained on pairs: --targets DIR" \
	"$T" eval "$TMPD/pairs.safetensors" "$TMPD/pin"
rm "$TMPD/pout/coffee-0016-0016.png"
expect_fail "a file without a partner is named" "pin/coffee-0016-0016.png has no partner in" \
	"$T" train --data "$TMPD/pin" --targets "$TMPD/pout" --channels 3 --out "$TMPD/no.safetensors"
expect_fail "--targets with --input" "either given or made" \
	"$T" train --data "$TMPD/pin" --targets "$TMPD/pout" --input gray --out "$TMPD/no.safetensors"

# Served: PNG in, PNG out, of each model's size and channels.
start_server "$TMPD/log" --log-format none "$TMPD/d28.safetensors" "$TMPD/rgb64.safetensors" \
	"$TMPD/rgb48x64.safetensors" "$TMPD/r32.safetensors" "$TMPD/col.safetensors" || exit 1
U=$SRV_URL
shape() { curl -s "$U/v1/models/$1" | jq -c .input_shape; }
check "d28 takes [1,28,28]" test "$(shape d28)" = "[1,28,28]"
check "rgb64 takes [3,64,64]" test "$(shape rgb64)" = "[3,64,64]"
check "rgb48x64 takes [3,48,64]" test "$(shape rgb48x64)" = "[3,48,64]"
check "r32 says it was trained resized" test "$(curl -s "$U/v1/models/r32" | jq -r .training.resize)" = 32x32
"$T" export tests/fixtures/digits --limit 1 --out "$TMPD/dg" >/dev/null
for m in d28:"$TMPD/dg/00000.png":"28 x 28, 8-bit grayscale" rgb64:"$TMPD/p64/chelsea-0016-0048.png":"64 x 64, 8-bit/color RGB" \
	rgb48x64:"$TMPD/p48x64/coffee-0016-0032.png":"64 x 48, 8-bit/color RGB"; do
	IFS=: read -r name png want <<<"$m"
	expect_status "$name: PNG in, 200" 200 -H 'Content-Type: image/png' -H 'Accept: image/png' \
		--data-binary @"$png" "$U/v1/models/$name/reconstruct"
	cp "$BODY" "$TMPD/out-$name.png"
	check "$name: PNG out, $want" bash -c "file '$TMPD/out-$name.png' | grep -q '$want'"
done
expect_error "a 48x64 image to the 64x64 model: 422" 422 wrong_size -H 'Content-Type: image/png' \
	--data-binary @"$TMPD/p48x64/coffee-0016-0032.png" "$U/v1/models/rgb64/encode"
check "naming both sizes" grep -q 'is 48x64 (height x width); model .rgb64. takes 64x64 images' "$BODY"
expect_status "with ?resize=true it is resampled" 200 -H 'Content-Type: image/png' \
	--data-binary @"$TMPD/p48x64/coffee-0016-0032.png" "$U/v1/models/rgb64/encode?resize=true"
m=$(curl -s "$U/v1/models/col")
check "the colorization model says what it expects" jqe '.task == "transform" and .input == "gray" and (.expects | test("gray image")) and (.operations | index("transform"))' <<<"$m"
"$T" patches "$PH/chelsea.png" --size 64x64 --stride 64 --channels 1 --out "$TMPD/gray" >/dev/null
expect_status "a gray PNG to the transform route: 200" 200 -H 'Content-Type: image/png' -H 'Accept: image/png' \
	--data-binary @"$TMPD/gray/chelsea-0000-0000.png" "$U/v1/models/col/transform"
cp "$BODY" "$TMPD/colour.png"
v=$(curl -s -H 'Inference-Header-Content-Length: 0' -H 'Content-Type: application/octet-stream' \
	--data-binary @"$TMPD/gray/chelsea-0000-0000.png" "$U/v2/models/col/infer")
check "V2: the gray PNG's reconstruction is the colour image, [1,3,64,64]" \
	jqe '[.outputs[] | select(.name == "reconstruction") | .shape] == [[1,3,64,64]]' <<<"$v"
check "and a colour PNG back" bash -c "file '$TMPD/gray/chelsea-0000-0000.png' | grep -q grayscale && file '$TMPD/colour.png' | grep -q '64 x 64, 8-bit/color RGB'"
done_tests
