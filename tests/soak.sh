#!/usr/bin/env bash
# The soak: aeserve on the shipped models under SECONDS (default 600) of
# mixed traffic: valid requests on every route (each answer compared with
# the one the same request got before the load), the bad inputs of the
# reliability tests, half-closed and aborted clients, and a slowloris
# trickle, all at once. Every 30 s the clients pause for 1.5 s and the
# server's RSS is read then, with nothing in flight. Passes when no valid
# request failed, no bad one got a 5xx or no answer, the highest quiet RSS
# of the later half of the run (after warm-up) is within 5% of the earlier
# half's, and the in-flight gauge is back to 0 at the end.
#
#   BUILD=build bash tests/soak.sh [SECONDS]    (make soak runs it twice:
#   the release build for 10 minutes, then the ASan build for 2)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
SECS=${1:-600}
WARMUP=$(( SECS / 10 < 60 ? SECS / 10 : 60 ))
H="$BUILD/tests/tools/hostile"
T="$BUILD/aetrain"

# ---- inputs ----
"$T" export tests/fixtures/digits --out "$TMPD/d" --limit 4 --json "$TMPD/d.json" >/dev/null
"$T" export tests/fixtures/digits --out "$TMPD/n" --limit 2 --noise gaussian:0.5:0.5 --seed 3 --json "$TMPD/noisy.json" >/dev/null
D0="$TMPD/d/00000.png"
{ for f in "$TMPD"/d/0000[01].png; do
	printf -- '--XB\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
	cat "$f"; printf '\r\n'; done; printf -- '--XB--\r\n'; } > "$TMPD/two.form"
start_server "$TMPD/log" --log-format none --header-timeout 5 --drain-delay 1 models/ || exit 1
pid=$SRV_PID PORT=$SRV_PORT
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

# ---- the load; the server's RSS read at a quiet point every 30 s ----
"$H" soak "$PORT" "$SECS" 16 200 "$TMPD/spec" "$pid" > "$TMPD/soak.out" 2> "$TMPD/soak.err"
soak_rc=$?
sleep 1
inflight=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^aeserve_requests_in_flight / { print $2 }')
grep -v '^quiet' "$TMPD/soak.out"
head -5 "$TMPD/soak.err"
# After warm-up, the highest quiet RSS of the later half of the run against
# the highest of the earlier half: allocator churn (200 trickling
# connections reopening their buffers) moves single points by a few MB
# either way; a leak would lift the later envelope.
read -r early late n < <(awk -v w="$WARMUP" -v secs="$SECS" '/^quiet/ {
		split($2, t, "="); split($3, r, "="); if (t[2] + 0 < w) next
		n++
		if (t[2] + 0 < (w + secs) / 2) { if (r[2] > e) e = r[2] } else if (r[2] > l) l = r[2]
	} END { print e + 0, l + 0, n + 0 }' "$TMPD/soak.out")
echo "RSS at quiet points after warm-up (${WARMUP} s), kB: highest of the earlier half $early, of the later half $late ($n points)"
awk '/^quiet/ { split($2, t, "="); split($3, r, "="); printf "%s%s:%d", (n++ ? " " : "rss_mb_at_quiet_points: "), t[2], r[2] / 1024 }
	END { print "" }' "$TMPD/soak.out"

check "soak: no valid request failed and no bad one got a 5xx or no answer" test "$soak_rc" -eq 0
check "soak: valid requests answered" grep -qE '^total .* valid=[1-9]' "$TMPD/soak.out"
check "soak: the in-flight gauge is back to 0 (got '$inflight')" test "$inflight" = 0
# ASan keeps freed memory in quarantine (up to 256 MB): its RSS says nothing.
release_only "soak: RSS flat after warm-up: the later half's highest quiet RSS within 5% of the earlier half's ($early -> $late kB)" \
	awk -v a="$early" -v b="$late" 'BEGIN { exit !(a > 0 && b > 0 && b <= a * 1.05) }'
stop_server "$pid"
check "soak: SIGTERM at the end exits 0 (rc $RC)" test "$RC" -eq 0
done_tests
