#!/usr/bin/env bash
# The service against its engine (make bench runs it): aeserve answering
# /v1/reconstruct with a PNG in and a PNG out under wrk (64 connections),
# against the engine reconstructing batches of 32 of the same digits in
# one process (bench_core engine), same model, same precision, the two
# taking turns of TURN_SECS seconds, TURNS times, seconds apart. The
# ratio is the median of the turns' requests/s over images/s. wrk shares
# the two cores with the server, as any client on the machine would.
# Prints JSON; progress to stderr.
#
#   TURNS (5), TURN_SECS (5), PRECISION (fp32), MODEL (models/mnist.safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TURNS=${TURNS:-5}
TURN_SECS=${TURN_SECS:-5}
PRECISION=${PRECISION:-fp32}
MODEL=${MODEL:-models/mnist.safetensors}
PORT=${BENCH_PORT:-18680}
THREADS=$(nproc)
IDX=tests/fixtures/digits/t10k-images-idx3-ubyte
tmp=$(mktemp -d)
pids=()
trap 'if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null; fi; rm -rf "$tmp"' EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install wrk" >&2; exit 1; }
"$BUILD"/aetrain export tests/fixtures/digits --split test --limit 1 --out "$tmp/png" >/dev/null
png="$tmp/png/00000.png"
mkdir "$tmp/models"
cp "$MODEL" "$tmp/models/"
name=$(basename "$MODEL" .safetensors)
"$BUILD"/aeserve --port "$PORT" --log-format none --precision "$PRECISION" --default "$name" "$tmp/models" 2>"$tmp/log" &
pids+=($!)
for _ in $(seq 200); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)" = 200 ] && break
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$tmp/log" >&2; exit 1; }
	sleep 0.05
done
mkfifo "$tmp/e.in" "$tmp/e.out"
"$BUILD"/bench/bench_core engine "$MODEL" "$IDX" "$THREADS" "$PRECISION" <"$tmp/e.in" >"$tmp/e.out" &
pids+=($!)
exec {ein}>"$tmp/e.in" {eout}<"$tmp/e.out"
echo ready >&"$ein"
read -r ready <&"$eout"

turns=()
for t in $(seq "$TURNS"); do
	echo "bench: service against engine, turn $t of $TURNS" >&2
	http=null engine=null
	for side in $( ((t % 2)) && echo "http engine" || echo "engine http"); do
		sleep 0.05
		if [ "$side" = http ]; then
			http=$(wrk -t2 -c64 -d"${TURN_SECS}s" --timeout 5s -s bench/post_png.lua "http://127.0.0.1:$PORT/v1/reconstruct" -- "$png" image/png | tail -1)
		else
			echo "reconstruct 32 $TURN_SECS" >&"$ein"
			read -r engine <&"$eout"
		fi
	done
	turns+=("$(jq -n -c --argjson h "$http" --argjson e "$engine" '{http: $h, engine_img_s: $e, ratio: ($h.req_s / $e)}')")
done
printf '%s\n' "${turns[@]}" | jq -s -c --arg p "$PRECISION" --arg m "$MODEL" --arg runs "${ready#ready }" '
	def median: sort | .[(length - 1) / 2 | floor];
	{model: $m, precision: $p, engine_runs: $runs, image: "28x28 grayscale PNG in, PNG out",
	 http_req_s: (map(.http.req_s) | median), engine_b32_img_s: (map(.engine_img_s) | median),
	 ratio: (map(.ratio) | median), turns: .}'
