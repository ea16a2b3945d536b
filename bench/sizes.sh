#!/usr/bin/env bash
# The size sweep (make bench runs it; make bench-sizes alone): the conv
# preset at 28x28x1, 64x64x3 and 128x128x3, training and reconstruct
# images/s at batch 32 and peak RSS, ours (bench_core size) and PyTorch's
# (torch_ref.py size), each size in a process of its own so that each
# peak is that size's. Prints JSON; bench/run.sh folds it into latest.json
# and latest.md.
#
# The two sides take turns, ROUNDS times per size: on a shared host the
# load moves over minutes (one side measured twice as fast from one run to
# the next), so a ratio is only fair between runs made side by side. Each
# side's figures are its medians over the rounds, each ratio the median of
# the rounds' ratios; "rounds" keeps every run.
#
#   SIZES (default "1x28x28 3x64x64 3x128x128"), THREADS, SECS, ROUNDS (3)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
SECS=${SECS:-3}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-1x28x28 3x64x64 3x128x128}
# Both sides run on the OpenBLAS kernels our programs choose (ae/blas.h:
# they replace a core OpenBLAS picked too old for the CPU); PyTorch's
# matrix products go through the same library.
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$("$BUILD"/aetrain --version | sed -n 's/.*OpenBLAS core \(.*\))$/\1/p')}
export OPENBLAS_CORETYPE
rows=()
for s in $SIZES; do
	IFS=x read -r c h w <<<"$s"
	runs=()
	for r in $(seq "$ROUNDS"); do
		echo "bench: size ${h}x${w}x${c}, round $r of $ROUNDS" >&2
		ours=$("$BUILD"/bench/bench_core size "$c" "$h" "$w" "$THREADS" "$SECS")
		ref=$(/usr/bin/python3 bench/torch_ref.py size "$c" "$h" "$w" "$THREADS" "$SECS")
		runs+=("$(jq -n -c --argjson o "$ours" --argjson t "$ref" '{ours: $o, torch: $t}')")
	done
	rows+=("$(printf '%s\n' "${runs[@]}" | jq -s -c '
		def median: sort | .[(length - 1) / 2 | floor];
		def side(k): {c: .[0][k].c, h: .[0][k].h, w: .[0][k].w, threads: .[0][k].threads,
		              reconstruct_b32_img_s: (map(.[k].reconstruct_b32_img_s) | median),
		              train_b32_img_s: (map(.[k].train_b32_img_s) | median),
		              peak_rss_kb: (map(.[k].peak_rss_kb) | max)};
		(side("ours")) as $o | (side("torch")) as $t
		| {size: "\($o.h)x\($o.w)x\($o.c)", pixels: ($o.c * $o.h * $o.w), ours: $o,
		   torch: ($t + {torch_version: .[0].torch.torch_version}),
		   train_ratio: (map(.ours.train_b32_img_s / .torch.train_b32_img_s) | median),
		   reconstruct_ratio: (map(.ours.reconstruct_b32_img_s / .torch.reconstruct_b32_img_s) | median),
		   rounds: .}')")
done
printf '%s\n' "${rows[@]}" | jq -s .
