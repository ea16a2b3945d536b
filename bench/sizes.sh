#!/usr/bin/env bash
# The size sweep (make bench runs it; make bench-sizes alone): the conv
# preset at 28x28x1, 64x64x3 and 128x128x3, training and reconstruct
# images/s at batch 32 and peak RSS, ours (bench_core size) and PyTorch's
# (torch_ref.py size) in one run, each size in a process of its own so
# that each peak is that size's. Prints JSON; bench/run.sh folds it into
# latest.json and latest.md.
#
#   SIZES (default "1x28x28 3x64x64 3x128x128"), THREADS, SECS
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
SECS=${SECS:-3}
SIZES=${SIZES:-1x28x28 3x64x64 3x128x128}
# Both sides run on the OpenBLAS kernels our programs choose (ae/blas.h:
# they replace a core OpenBLAS picked too old for the CPU); PyTorch's
# matrix products go through the same library.
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$("$BUILD"/aetrain --version | sed -n 's/.*OpenBLAS core \(.*\))$/\1/p')}
export OPENBLAS_CORETYPE
rows=()
for s in $SIZES; do
	IFS=x read -r c h w <<<"$s"
	echo "bench: size ${h}x${w}x${c}" >&2
	ours=$("$BUILD"/bench/bench_core size "$c" "$h" "$w" "$THREADS" "$SECS")
	ref=$(/usr/bin/python3 bench/torch_ref.py size "$c" "$h" "$w" "$THREADS" "$SECS")
	rows+=("$(jq -n -c --argjson o "$ours" --argjson t "$ref" \
		'{size: "\($o.h)x\($o.w)x\($o.c)", pixels: ($o.c * $o.h * $o.w), ours: $o, torch: $t,
		  train_ratio: ($o.train_b32_img_s / $t.train_b32_img_s),
		  reconstruct_ratio: ($o.reconstruct_b32_img_s / $t.reconstruct_b32_img_s)}')")
done
printf '%s\n' "${rows[@]}" | jq -s .
