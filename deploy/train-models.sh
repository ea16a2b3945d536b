#!/usr/bin/env bash
# Rebuilds the shipped models in models/ from data/ (`make models`; run
# `make data` first). The recipe is the issue's: conv preset, latent 16,
# batch 32, Adam 1e-3, 20 epochs, 10% held out for calibration.
# The two MNIST models train side by side, one thread each; fashion then
# gets both cores (FASHION_THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
EPOCHS=${EPOCHS:-20}
THREADS=${THREADS:-1}
mkdir -p models

train() {
	local name=$1 data=$2; shift 2
	"$BUILD"/aetrain train --data "$data" --out "models/$name.safetensors" --arch conv --latent 16 \
		--batch 32 --lr 0.001 --epochs "$EPOCHS" --seed 1 --threads "$THREADS" --quiet "$@"
	"$BUILD"/aetrain eval "models/$name.safetensors" "$data" > "models/$name.eval.txt"
	cat "models/$name.eval.txt"
}

train mnist data/mnist &
p1=$!
train mnist-denoise data/mnist --noise gaussian:0.5:0.5 &
p2=$!
wait $p1
wait $p2
THREADS=${FASHION_THREADS:-2} train fashion data/fashion

# The colorization model (models/photo/, beside the three): 32x32 patches
# of four of the photographs, the model given each in gray; the fifth
# photograph (coffee) is held out for its eval and grid.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p models/photo
"$BUILD"/aetrain patches data/photos/astronaut.png data/photos/chelsea.png data/photos/motorcycle_left.png \
	data/photos/motorcycle_right.png --size 32x32 --stride 8 --out "$tmp/train"
"$BUILD"/aetrain patches data/photos/coffee.png --size 32x32 --stride 16 --out "$tmp/test"
"$BUILD"/aetrain train --data "$tmp/train" --out models/photo/colorize.safetensors --channels 3 --input gray \
	--latent 256 --batch 32 --lr 0.001 --epochs "$EPOCHS" --seed 1 --threads "${FASHION_THREADS:-2}" --quiet
"$BUILD"/aetrain eval models/photo/colorize.safetensors "$tmp/test" > models/photo/colorize.eval.txt
cat models/photo/colorize.eval.txt
