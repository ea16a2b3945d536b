#!/usr/bin/env bash
# Ours beside ONNX Runtime and PyTorch on one model (make bench runs it):
# the shipped digit model (MODEL, default models/mnist.safetensors) in our
# engine at each precision this CPU runs (fp32, bf16, int8), in ONNX
# Runtime (npm's onnxruntime-node, CPU; bench/ort/, pinned by its
# package-lock.json) from the model exported to ONNX by aetrain
# export-onnx, and in PyTorch (tools/python/aeserve_model.py), on
# the same test digits, encode and reconstruct at batch 1, 32 and 256.
# Every side is a process kept warm; they take turns of TURN_SECS seconds,
# TURNS times per case, the order rotating each turn, so the sides of a
# ratio are measured seconds apart on the same host. Each side's figure is
# its median over the turns, each ratio the median of the turns' ratios.
# Prints JSON; progress and what is missing go to stderr.
#
#   MODEL, THREADS (nproc), TURNS (5), TURN_SECS (0.5)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODEL=${MODEL:-models/mnist.safetensors}
THREADS=${THREADS:-$(nproc)}
TURNS=${TURNS:-5}
TURN_SECS=${TURN_SECS:-0.5}
IDX=tests/fixtures/digits/t10k-images-idx3-ubyte
PY=/usr/bin/python3
dir=$(mktemp -d)
pids=()
trap 'if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null; fi; rm -rf "$dir"' EXIT

notes=()
sides=()
# start NAME CMD...: a side's process, its stdin and stdout on fifos.
start() {
	local name=$1; shift
	mkfifo "$dir/$name.in" "$dir/$name.out"
	"$@" <"$dir/$name.in" >"$dir/$name.out" &
	pids+=($!)
	exec {fd}>"$dir/$name.in"
	eval "in_$name=$fd"
	exec {fd}<"$dir/$name.out"
	eval "out_$name=$fd"
	sides+=("$name")
}

# ask SIDE REQUEST: one request, its one-line answer.
ask() {
	local in out answer
	in=in_$1 out=out_$1
	echo "$2" >&"${!in}"
	if ! read -r answer <&"${!out}" || [ -z "$answer" ]; then
		echo "bench: $1 gave no answer to \"$2\"" >&2
		exit 1
	fi
	echo "$answer"
}

# Ours at each precision; one that falls back to fp32 here is left out.
for p in fp32 bf16 int8; do start "ours_$p" "$BUILD"/bench/bench_core engine "$MODEL" "$IDX" "$THREADS" "$p"; done
# ONNX Runtime: the model exported by aetrain export-onnx.
if [ ! -d bench/ort/node_modules/onnxruntime-node ] && command -v npm >/dev/null; then
	(cd bench/ort && npm ci --ignore-scripts --silent --no-audit --no-fund) >&2 || true
fi
if [ -d bench/ort/node_modules/onnxruntime-node ]; then
	"$BUILD"/aetrain export-onnx "$MODEL" --out "$dir/onnx" >&2
	exporter="aetrain export-onnx"
	start ort node bench/ort/ort_ref.js "$dir/onnx" "$IDX" "$THREADS"
	ort_version=$(node -p 'require("./bench/ort/node_modules/onnxruntime-node/package.json").version')
else
	notes+=("ONNX Runtime is missing: cd bench/ort && npm ci --ignore-scripts (npm's onnxruntime-node, CPU)")
	echo "bench: ${notes[-1]}" >&2
fi
if $PY -c 'import torch' 2>/dev/null; then
	start torch $PY bench/torch_ref.py engine "$MODEL" "$IDX" "$THREADS"
else
	notes+=("PyTorch is missing: apt-get install python3-torch")
	echo "bench: ${notes[-1]}" >&2
fi

# Ready and warm, each in turn (a side's start must not share the cores
# with another's first turn).
declare -A runs_as=()
live=()
for s in "${sides[@]}"; do
	r=$(ask "$s" ready)
	runs_as[$s]=${r#ready }
	case $s in
	ours_fp32 | ort | torch) live+=("$s") ;;
	ours_*) if [ "${runs_as[$s]}" = "${s#ours_}" ]; then live+=("$s"); else
		notes+=("${s#ours_}: this CPU lacks its instructions (ours runs fp32 there); left out")
		echo "bench: ${notes[-1]}" >&2
	fi ;;
	esac
done

# The outputs against ours in fp32 (reconstruct, 32 images): the same model?
declare -A maxdiff=()
ask ours_fp32 "dump reconstruct 32 $dir/ref.f32" >/dev/null
for s in "${live[@]}"; do
	[ "$s" = ours_fp32 ] && continue
	ask "$s" "dump reconstruct 32 $dir/$s.f32" >/dev/null
	maxdiff[$s]=$($PY -c 'import sys, array
a, b = array.array("f"), array.array("f")
a.frombytes(open(sys.argv[1], "rb").read()); b.frombytes(open(sys.argv[2], "rb").read())
print(max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else "null")' "$dir/ref.f32" "$dir/$s.f32")
done

# Ours at its best: the precision aeserve --precision auto picks here.
best=ours_fp32
for s in ours_bf16 ours_int8; do [[ " ${live[*]} " == *" $s "* ]] && best=$s; done

rows=()
for op in encode reconstruct; do
	for b in 1 32 256; do
		turns=()
		for t in $(seq "$TURNS"); do
			echo "bench: engines, $op batch $b, turn $t of $TURNS" >&2
			order=("${live[@]:$(((t - 1) % ${#live[@]}))}" "${live[@]:0:$(((t - 1) % ${#live[@]}))}")
			declare -A got=()
			for s in "${order[@]}"; do
				sleep 0.05 # the last side's spinning threads settle
				got[$s]=$(ask "$s" "$op $b $TURN_SECS")
			done
			turns+=("$(for s in "${live[@]}"; do echo "$s ${got[$s]}"; done | jq -R -s -c 'split("\n") | map(select(length > 0) | split(" ") | {(.[0]): (.[1] | tonumber)}) | add')")
			unset got
		done
		rows+=("$(printf '%s\n' "${turns[@]}" | jq -s -c --arg op "$op" --argjson b "$b" '
			def median: sort | .[(length - 1) / 2 | floor];
			. as $t | ($t[0] | keys) as $k |
			{op: $op, batch: $b, img_s: ($k | map({key: ., value: ([$t[][.]] | median)}) | from_entries),
			 ratios: ([$k[] | select(startswith("ours_")) as $o | [$k[] | select(startswith("ours_") | not)][] as $r |
			           {key: "\($o)_vs_\($r)", value: ([$t[] | .[$o] / .[$r]] | median)}] | from_entries),
			 turns: $t}')")
	done
done
printf '%s\n' "${rows[@]}" | jq -s -c --arg model "$MODEL" --argjson threads "$THREADS" --arg exporter "${exporter:-}" --arg best "$best" \
	--arg ort "${ort_version:-}" --arg torch "$($PY -c 'import torch; print(torch.__version__)' 2>/dev/null || true)" \
	--argjson maxdiff "$(for s in "${!maxdiff[@]}"; do echo "$s ${maxdiff[$s]}"; done | jq -R -s -c 'split("\n") | map(select(length > 0) | split(" ") | {(.[0]): (.[1] | tonumber? // null)}) | add // {}')" \
	--argjson notes "$(printf '%s\n' "${notes[@]+"${notes[@]}"}" | jq -R -s -c 'split("\n") | map(select(length > 0))')" '
	{model: $model, threads: $threads, onnx_exporter: $exporter, onnxruntime: $ort, torch: $torch, best: $best,
	 max_abs_diff_reconstruct_vs_ours_fp32: $maxdiff, notes: $notes, cases: .}'
