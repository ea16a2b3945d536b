#!/usr/bin/env bash
# The soak: aeserve on the shipped models under SECONDS (default 600) of
# mixed traffic: valid requests on every route (each answer compared with
# the one the same request got before the load), the bad inputs of the
# reliability tests, half-closed and aborted clients, and a slowloris
# trickle, all at once. Samples the server's RSS every 5 s. Passes when no
# valid request failed, no bad one got a 5xx or no answer, the RSS after
# warm-up is flat (the last minute's mean within 5% of the first minute's,
# and the fitted trend under 5%), and the in-flight gauge is back to 0.
#
#   BUILD=build bash tests/soak.sh [SECONDS]    (make soak runs it twice:
#   the release build for 10 minutes, then the ASan build for 2)
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
SECS=${1:-600}
WARMUP=$(( SECS / 10 < 60 ? SECS / 10 : 60 ))
H="$BUILD/tests/tools/hostile"
T="$BUILD/aetrain"
PORT=$((20000 + ($$ * 13) % 12000))

# ---- inputs ----
"$T" export tests/fixtures/digits --out "$TMPD/d" --limit 4 --json "$TMPD/d.json" >/dev/null
"$T" export tests/fixtures/digits --out "$TMPD/n" --limit 2 --noise gaussian:0.5:0.5 --seed 3 --json "$TMPD/noisy.json" >/dev/null
D0="$TMPD/d/00000.png"
{ for f in "$TMPD"/d/0000[01].png; do
	printf -- '--XB\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
	cat "$f"; printf '\r\n'; done; printf -- '--XB--\r\n'; } > "$TMPD/two.form"
start_server $PORT "$TMPD/log" --log-format none --header-timeout 5 --drain-delay 1 models/ || exit 1
pid=${PIDS[-1]}
curl -s -H 'Content-Type: image/png' --data-binary @"$D0" "http://127.0.0.1:$PORT/v1/models/mnist/encode" \
	| jq -c '{shape: [1,16], data: .data}' > "$TMPD/codes.json"
"$BUILD/tests/tools/pngbomb" chunk tEXt "$TMPD/text.png"
"$BUILD/tests/tools/pngbomb" idat 2048 "$TMPD/idat.png"
head -c 100 "$D0" > "$TMPD/trunc.png"
head -c 9000000 /dev/zero > "$TMPD/huge"

# WEIGHT EXPECT METHOD PATH CTYPE FILE ACCEPT
cat > "$TMPD/spec" <<EOF
4 200 GET /livez - - -
3 200 GET /readyz - - -
2 200 GET /v1/models - - -
2 200 GET /v1/models/mnist - - -
1 200 GET /metrics - - -
12 200 POST /v1/models/mnist/encode image/png $D0 -
8 200 POST /v1/models/mnist/reconstruct multipart/form-data;boundary=XB $TMPD/two.form -
8 200 POST /v1/models/mnist-denoise/denoise application/json $TMPD/noisy.json -
6 200 POST /v1/models/mnist/decode application/json $TMPD/codes.json -
8 200 POST /v1/models/fashion/anomaly?quantile=0.999 image/png $D0 -
4 200 POST /v1/reconstruct image/png $D0 image/png
2 400 POST /v1/encode image/png $TMPD/text.png -
1 400 POST /v1/encode image/png $TMPD/idat.png -
2 400 POST /v1/encode image/png $TMPD/trunc.png -
2 404 POST /v1/models/%ff%fe/encode image/png $D0 -
2 400 POST /v1/encode?resize=maybe image/png $D0 -
2 415 POST /v1/encode image/pngfoo $D0 -
1 413 POST /v1/encode image/png $TMPD/huge -
2 405 GET /v1/encode - - -
2 404 GET /nowhere - - -
3 half POST /v1/models/mnist/reconstruct image/png $D0 -
3 abort POST /v1/models/mnist/encode image/png $D0 -
EOF

# ---- the load, with RSS sampled every 5 s ----
( while kill -0 "$pid" 2>/dev/null; do
	echo "$(date +%s) $(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"; sleep 5
  done ) > "$TMPD/rss" &
sampler=$!
T0=$(date +%s)
"$H" soak $PORT "$SECS" 16 200 "$TMPD/spec" > "$TMPD/soak.out" 2> "$TMPD/soak.err"
soak_rc=$?
sleep 1
inflight=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^aeserve_requests_in_flight / { print $2 }')
cat "$TMPD/soak.out"
head -5 "$TMPD/soak.err"
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null

# RSS after warm-up. A sample catches whatever requests are in flight (a
# few MB either way), so "flat" is judged on the trend: the mean of the
# first minute after warm-up against the mean of the last minute, and the
# least-squares trend over the whole run; the swing is reported as well.
read -r first last trend lo hi n_samples < <(awk -v t0="$T0" -v w="$WARMUP" '
	$2 != "" && $1 - t0 >= w { v[++n] = $2 }
	END {
		k = n < 12 ? n : 12
		for (i = 1; i <= k; i++) { a += v[i]; b += v[n - k + i] }
		lo = hi = v[1]
		for (i = 1; i <= n; i++) {
			sx += i; sy += v[i]; sxx += i * i; sxy += i * v[i]
			if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i]
		}
		slope = n > 1 ? (n * sxy - sx * sy) / (n * sxx - sx * sx) : 0
		printf "%d %d %d %d %d %d\n", a / k, b / k, slope * n, lo, hi, n
	}' "$TMPD/rss")
echo "RSS after warm-up (${WARMUP} s), kB: first-minute mean $first, last-minute mean $last, fitted trend over the run $trend, range $lo..$hi ($n_samples samples)"
awk '{ printf "%s%d", (NR > 1 ? " " : "rss_mb_every_5s: "), $2 / 1024 } END { print "" }' "$TMPD/rss"

check "soak: no valid request failed and no bad one got a 5xx or no answer" test "$soak_rc" -eq 0
check "soak: valid requests answered" grep -qE '^total .* valid=[1-9]' "$TMPD/soak.out"
check "soak: the in-flight gauge is back to 0 (got '$inflight')" test "$inflight" = 0
# ASan keeps freed memory in quarantine (up to 256 MB): its RSS says nothing.
[ "$SANITIZED" = 1 ] || check "soak: RSS flat after warm-up: last-minute mean within 5% of the first ($first -> $last kB)" \
	awk -v a="$first" -v b="$last" 'BEGIN { exit !(a > 0 && b <= a * 1.05) }'
[ "$SANITIZED" = 1 ] || check "soak: RSS flat after warm-up: fitted trend under 5% ($trend kB)" \
	awk -v a="$first" -v t="$trend" 'BEGIN { exit !(a > 0 && t <= a * 0.05) }'
stop_server "$pid"
check "soak: SIGTERM at the end exits 0 (rc $RC)" test "$RC" -eq 0
done_tests
