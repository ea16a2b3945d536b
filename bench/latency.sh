#!/usr/bin/env bash
# Latency at a fixed arrival rate (make bench runs it): aeserve on the
# shipped models, for /v1/encode (JSON out) and /v1/reconstruct (PNG in
# and out) on one 28x28 test digit: first its most requests per second
# under wrk (64 connections, a closed loop), then bench/openloop sending
# at 50% and 80% of that whatever the answers do (a Poisson process;
# latency from when each request was due), p50, p90, p99, p99.9 and max.
# Prints JSON; progress to stderr.
#
#   WRK_SECS (10), LAT_SECS (10), PRECISION (fp32)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
WRK_SECS=${WRK_SECS:-10}
LAT_SECS=${LAT_SECS:-10}
PRECISION=${PRECISION:-fp32}
PORT=${BENCH_PORT:-18580}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install wrk" >&2; exit 1; }
"$BUILD"/aetrain export tests/fixtures/digits --split test --limit 1 --out "$tmp/png" >/dev/null
png="$tmp/png/00000.png"
"$BUILD"/aeserve --port "$PORT" --log-format none --precision "$PRECISION" --default mnist models/ 2>"$tmp/log" &
pid=$!
for _ in $(seq 200); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)" = 200 ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/log" >&2; exit 1; }
	sleep 0.05
done

rows=()
for route in encode reconstruct; do
	accept=application/json
	[ "$route" = reconstruct ] && accept=image/png
	echo "bench: latency, /v1/$route: the most under wrk" >&2
	max=$(wrk -t2 -c64 -d"${WRK_SECS}s" --timeout 5s -s bench/post_png.lua "http://127.0.0.1:$PORT/v1/$route" -- "$png" "$accept" | tail -1)
	peak=$(jq .req_s <<<"$max")
	runs=()
	for share in 50 80; do
		rate=$(jq -n --argjson p "$peak" --argjson s "$share" '$p * $s / 100 | floor')
		echo "bench: latency, /v1/$route at $share% ($rate req/s), open loop" >&2
		runs+=("$("$BUILD"/bench/openloop "$PORT" "/v1/$route" "$png" image/png "$accept" "$rate" "$LAT_SECS" | jq -c --argjson s "$share" '. + {share_of_max: $s}')")
	done
	rows+=("$(printf '%s\n' "${runs[@]}" | jq -s -c --arg r "$route" --argjson max "$max" '{route: "/v1/\($r)", closed_loop_max: $max, open_loop: .}')")
done
printf '%s\n' "${rows[@]}" | jq -s -c --arg p "$PRECISION" '{precision: $p, image: "28x28 grayscale PNG (a test digit)", routes: .}'
