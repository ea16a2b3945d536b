#!/usr/bin/env bash
# The size sweep (make bench runs it; make bench-sizes alone): the conv
# preset at 28x28x1, 64x64x3 and 128x128x3, training and reconstruct
# images/s at batch 32 and peak RSS, ours (bench_core turns) and PyTorch's
# (torch_ref.py turns), each size in a pair of processes of its own so that
# each peak is that size's. Prints JSON; bench/run.sh folds it into
# latest.json and latest.md.
#
# The two sides take short turns, TURNS times per size and operation, each
# process kept alive between its turns: on a shared host the speed of a
# core moves by 20-30% within seconds and by up to 2x over minutes, so a
# ratio is only fair between turns taken seconds apart. Each turn is the
# images/s over TURN_SECS seconds of batches (at least 3); who goes first
# alternates. Each side's figures are its medians over the turns, each
# ratio the median of the turns' ratios; "rounds" keeps every turn.
#
#   SIZES (default "1x28x28 3x64x64 3x128x128"), THREADS, TURNS (9),
#   TURN_SECS (1)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
TURNS=${TURNS:-9}
TURN_SECS=${TURN_SECS:-1}
SIZES=${SIZES:-1x28x28 3x64x64 3x128x128}
# Both sides run on the OpenBLAS kernels our programs choose (ae/blas.h:
# they replace a core OpenBLAS picked too old for the CPU); PyTorch's
# matrix products go through the same library.
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$("$BUILD"/aetrain --version | sed -n 's/.*OpenBLAS core \(.*\))$/\1/p')}
export OPENBLAS_CORETYPE
torch_version=$(/usr/bin/python3 -c 'import torch; print(torch.__version__)')
dir=$(mktemp -d)
pids=()
trap 'if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null; fi; rm -rf "$dir"' EXIT

# ask SIDE REQUEST: one request to a side's process, its one-line answer.
ask() {
	local in=$1_in out=$1_out answer
	echo "$2" >&"${!in}"
	if ! read -r answer <&"${!out}" || [ -z "$answer" ]; then
		echo "bench: $1 gave no answer to \"$2\"" >&2
		exit 1
	fi
	echo "$answer"
}

rows=()
for s in $SIZES; do
	IFS=x read -r c h w <<<"$s"
	rm -f "$dir"/*
	mkfifo "$dir"/ours.in "$dir"/ours.out "$dir"/torch.in "$dir"/torch.out
	"$BUILD"/bench/bench_core turns "$c" "$h" "$w" "$THREADS" <"$dir"/ours.in >"$dir"/ours.out &
	pids=($!)
	/usr/bin/python3 bench/torch_ref.py turns "$c" "$h" "$w" "$THREADS" <"$dir"/torch.in >"$dir"/torch.out &
	pids+=($!)
	exec {ours_in}>"$dir"/ours.in {ours_out}<"$dir"/ours.out {torch_in}>"$dir"/torch.in {torch_out}<"$dir"/torch.out
	# Both sides answer only once set up and warmed: the first turn must
	# not share the cores with the other side's start (PyTorch's import
	# alone takes seconds).
	ask ours rss >/dev/null
	ask torch rss >/dev/null
	runs=()
	for r in $(seq "$TURNS"); do
		echo "bench: size ${h}x${w}x${c}, turn $r of $TURNS" >&2
		sides=(ours torch)
		[ $((r % 2)) -eq 0 ] && sides=(torch ours)
		declare -A got=()
		for op in reconstruct train; do
			for side in "${sides[@]}"; do
				got[$side.$op]=$(ask "$side" "$op $TURN_SECS")
			done
		done
		runs+=("$(jq -n -c --argjson orec "${got[ours.reconstruct]}" --argjson otr "${got[ours.train]}" \
			--argjson trec "${got[torch.reconstruct]}" --argjson ttr "${got[torch.train]}" \
			'{ours: {reconstruct_b32_img_s: $orec, train_b32_img_s: $otr},
			  torch: {reconstruct_b32_img_s: $trec, train_b32_img_s: $ttr}}')")
		unset got
	done
	ours_rss=$(ask ours rss)
	torch_rss=$(ask torch rss)
	exec {ours_in}>&- {ours_out}<&- {torch_in}>&- {torch_out}<&-
	wait "${pids[@]}"
	pids=()
	rows+=("$(printf '%s\n' "${runs[@]}" | jq -s -c --argjson c "$c" --argjson h "$h" --argjson w "$w" \
		--argjson threads "$THREADS" --argjson orss "$ours_rss" --argjson trss "$torch_rss" --arg tv "$torch_version" '
		def median: sort | .[(length - 1) / 2 | floor];
		def side(k; rss): {c: $c, h: $h, w: $w, threads: $threads,
		              reconstruct_b32_img_s: (map(.[k].reconstruct_b32_img_s) | median),
		              train_b32_img_s: (map(.[k].train_b32_img_s) | median),
		              peak_rss_kb: rss};
		{size: "\($h)x\($w)x\($c)", pixels: ($c * $h * $w), ours: side("ours"; $orss),
		 torch: (side("torch"; $trss) + {torch_version: $tv}),
		 train_ratio: (map(.ours.train_b32_img_s / .torch.train_b32_img_s) | median),
		 reconstruct_ratio: (map(.ours.reconstruct_b32_img_s / .torch.reconstruct_b32_img_s) | median),
		 rounds: .}')")
done
printf '%s\n' "${rows[@]}" | jq -s .
