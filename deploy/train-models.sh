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
