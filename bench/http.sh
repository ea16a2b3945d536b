#!/usr/bin/env bash
# The HTTP half of `make bench`: wrk (64 connections, WRK_SECS seconds,
# POSTing one 28x28 test PNG) against, in one run:
#   - a bare libmicrohttpd responder (the ceiling: no decoding, no model),
#   - aeserve on the shipped models: /v1/encode, and /v1/reconstruct with
#     Accept: image/png; its time to a 200 from /readyz and its peak RSS,
#   - the same model in PyTorch behind FastAPI/uvicorn (bench/torch_serve.py).
# Prints one JSON object on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECS=${WRK_SECS:-20}
CONNS=${WRK_CONNS:-64}
PORT=${BENCH_PORT:-18480}
PY=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install wrk" >&2; exit 1; }
"$BUILD"/aetrain export tests/fixtures/digits --split test --limit 1 --out "$tmp/png" >/dev/null
png="$tmp/png/00000.png"

# load URL [ACCEPT]: one wrk run, its JSON line.
load() {
	echo "bench: wrk -c$CONNS -d${SECS}s $1 ${2:-}" >&2
	wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 5s -s bench/post_png.lua "$1" -- "$png" "${2:-application/json}" | tail -1
}

# wait_post URL SECONDS: until a POST of the PNG answers 200.
wait_post() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$png" -H 'Content-Type: image/png' "$1" || true)" = 200 ] && return 0
		sleep 0.05
	done
	echo "bench: $1 did not answer 200 within $2 s" >&2
	return 1
}

hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# The ceiling.
setsid "$BUILD"/bench/bare_mhd "$PORT" 2 & pids+=($!)
wait_post "http://127.0.0.1:$PORT/" 5
bare=$(load "http://127.0.0.1:$PORT/")
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

# aeserve: readiness from launch, then load, then peak RSS.
port=$((PORT + 1))
t0=$(date +%s%N)
setsid "$BUILD"/aeserve --port "$port" --log-format none --default mnist models/ 2>"$tmp/aeserve.log" & pid=$!; pids+=("$pid")
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)" = 200 ]; do
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/aeserve.log" >&2; exit 1; }
	sleep 0.002
done
ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait_post "http://127.0.0.1:$port/v1/encode" 5
enc=$(load "http://127.0.0.1:$port/v1/encode")
rec=$(load "http://127.0.0.1:$port/v1/reconstruct" image/png)
rss=$(hwm_kb "$pid")
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true

# The alternative a user would write.
fa_enc=null fa_rec=null fa_rss=null fa_note=null
port=$((PORT + 2))
if $PY -c 'import torch, fastapi, uvicorn, PIL' 2>/dev/null; then
	AE_MODEL=models/mnist.safetensors setsid $PY -m uvicorn torch_serve:app --app-dir bench --host 127.0.0.1 \
		--port "$port" --workers "$(nproc)" --log-level warning --no-access-log 2>"$tmp/uvicorn.log" & pid=$!; pids+=("$pid")
	wait_post "http://127.0.0.1:$port/v1/encode" 60 || { cat "$tmp/uvicorn.log" >&2; exit 1; }
	fa_enc=$(load "http://127.0.0.1:$port/v1/encode")
	fa_rec=$(load "http://127.0.0.1:$port/v1/reconstruct" image/png)
	# uvicorn's workers are child processes: sum their peaks.
	fa_rss=0
	for p in $pid $(pgrep -P "$pid" || true); do v=$(hwm_kb "$p" || true); fa_rss=$((fa_rss + ${v:-0})); done
	kill -TERM -- "-$pid"; wait "$pid" 2>/dev/null || true
else
	fa_note='"missing: apt-get install python3-torch python3-fastapi python3-uvicorn python3-pil"'
	echo "bench: FastAPI reference skipped: $fa_note" >&2
fi

jq -n --argjson bare "$bare" --argjson enc "$enc" --argjson rec "$rec" --argjson rss "$rss" \
	--argjson ready "$ready_ms" --argjson fa_enc "$fa_enc" --argjson fa_rec "$fa_rec" \
	--argjson fa_rss "$fa_rss" --argjson fa_note "$fa_note" --argjson conns "$CONNS" --argjson secs "$SECS" '
	{connections: $conns, seconds: $secs, image: "28x28 grayscale PNG (a test digit)",
	 bare_mhd: $bare,
	 aeserve: {encode: $enc, reconstruct_png: $rec, peak_rss_kb: $rss, ready_ms: $ready,
	           models: "mnist, mnist-denoise, fashion"},
	 fastapi: {encode: $fa_enc, reconstruct_png: $fa_rec, peak_rss_kb: $fa_rss, note: $fa_note}}'
