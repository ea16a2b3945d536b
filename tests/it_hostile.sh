#!/usr/bin/env bash
# aeserve against hostile and unlucky clients: the twelve cases of the
# reliability issue, each as the client meets it (status, body, timing,
# memory), and the server still healthy afterwards. Under `make sanitize`
# the same script runs on the ASan+UBSan build, where any overflow or
# use-after-free aborts the server and fails the checks after it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"
H="$BUILD/tests/tools/hostile"
BOMB="$BUILD/tests/tools/pngbomb"
P=(-H "Content-Type: image/png")

"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 20 >/dev/null
D0="$TMPD/digits/00000.png"

# Error bodies met on the way, checked against openapi.yaml at the end.
mkdir -p "$TMPD/errs"
# (Counted from the folder: some callers run in a subshell.)
keep_err() {
	local have=("$TMPD/errs"/*.json) n=0
	[ -e "${have[0]}" ] && n=${#have[@]}
	[ -s "$1" ] && cp "$1" "$TMPD/errs/$n.json"
}
# field KEY LINE: the value of KEY=... in a hostile summary line.
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
# ms_lt A B: A < B for decimal numbers.
ms_lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
rss_peak_mb() { awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$1/status"; }
alive() { curl -sf -m 2 -o /dev/null "http://127.0.0.1:$1/livez"; }

# ---- 1. overcomplete models: encode writes more floats than it reads ----
"$T" train --arch dense --latent 1000 --data tests/fixtures/digits --epochs 1 --quiet \
	--out "$TMPD/wide.safetensors" >/dev/null 2>&1
start_server "$TMPD/l1" --workers 1 --max-batch 8 --batch-delay-us 20000 --log-format none "$TMPD/wide.safetensors" || bad "server did not start"
P1=$SRV_PORT
curl -s "${P[@]}" --data-binary @"$D0" "http://127.0.0.1:$P1/v1/encode" > "$TMPD/enc1.json"
jq -c '{shape: [1,1000], data: .data}' "$TMPD/enc1.json" > "$TMPD/codes1000.json"
curl -s -H 'Content-Type: application/json' --data-binary @"$TMPD/codes1000.json" "http://127.0.0.1:$P1/v1/decode" > "$TMPD/dec1.json"
check "1: a latent-1000 model encodes one image" jqe '.shape == [1,1000]' "$TMPD/enc1.json"
cpids=()
for i in $(seq 16); do
	curl -s -m 20 "${P[@]}" --data-binary @"$D0" "http://127.0.0.1:$P1/v1/encode" > "$TMPD/enc_c$i.json" & cpids+=($!)
	curl -s -m 20 -H 'Content-Type: application/json' --data-binary @"$TMPD/codes1000.json" "http://127.0.0.1:$P1/v1/decode" > "$TMPD/dec_c$i.json" & cpids+=($!)
done
wait "${cpids[@]}"
same=0
for i in $(seq 16); do
	cmp -s "$TMPD/enc_c$i.json" "$TMPD/enc1.json" && cmp -s "$TMPD/dec_c$i.json" "$TMPD/dec1.json" && same=$((same + 1))
done
check "1: 16 concurrent encodes and decodes equal the single answers ($same of 16)" test "$same" -eq 16
check "1: the server is alive after them" alive "$P1"
curl -s "http://127.0.0.1:$P1/metrics" > "$TMPD/m1"
check "1: they ran batched" bash -c "awk '/^aeserve_batch_size_sum/{s=\$2} /^aeserve_batch_size_count/{c=\$2} END{exit !(s/c > 1.5)}' '$TMPD/m1'"
stop_server "${PIDS[-1]}"
check "1: and exits 0 on SIGTERM (rc $RC)" test "$RC" -eq 0

# ---- 2 and 11: SIGTERM with a big request in flight; readiness in the pre-stop delay ----
for _ in $(seq 205); do
	for f in "$TMPD"/digits/*.png; do
		printf -- '--XB\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\nContent-Type: image/png\r\n\r\n'
		cat "$f"; printf '\r\n'
	done
done | head -c 100000000 > "$TMPD/parts"
# exactly 4,096 parts
awk 'BEGIN { RS = "--XB\r\n"; ORS = "" } NR > 1 && NR <= 4097 { print "--XB\r\n" $0 }' "$TMPD/parts" > "$TMPD/4096.form"
printf -- '--XB--\r\n' >> "$TMPD/4096.form"
start_server "$TMPD/l2" --drain-delay 2 --log-format none models/ || bad "server did not start"
P2=$SRV_PORT
pid=${PIDS[-1]}
curl -s -m 60 -o "$TMPD/big.json" -w '%{http_code}' -H 'Content-Type: multipart/form-data; boundary=XB' \
	--data-binary @"$TMPD/4096.form" "http://127.0.0.1:$P2/v1/anomaly" > "$TMPD/big.status" &
cpid=$!
sleep 0.5
( sleep 0.3
  rz=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/readyz")
  lz=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/livez")
  enc=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "${P[@]}" --data-binary @"$D0" "http://127.0.0.1:$P2/v1/encode")
  echo "$rz $lz $enc" > "$TMPD/during2" ) &
probe=$!
stop_server "$pid" TERM 30
rc=$RC; dt=$STOP_MS
wait "$probe" "$cpid"
read -r rz lz enc < "$TMPD/during2"
check "11: /readyz is 503 in the pre-stop delay (got $rz)" test "$rz" = 503
check "11: /livez is 200 in the pre-stop delay (got $lz)" test "$lz" = 200
check "11: requests are still served in the pre-stop delay (encode got $enc)" test "$enc" = 200
check "2: the 4,096-image request in flight at SIGTERM is answered 200 (got $(cat "$TMPD/big.status"))" test "$(cat "$TMPD/big.status")" = 200
check "2: with 4,096 results" jqe '.results | length == 4096' "$TMPD/big.json"
check "2: exit 0 after the drain (rc $rc, ${dt} ms)" test "$rc" -eq 0
check "11: the stop waited for the pre-stop delay (${dt} ms)" test "$dt" -ge 2000

# ---- 3 and 4: PNG bombs ----
start_server "$TMPD/l3" --log-format none models/ || bad "server did not start"
P3=$SRV_PORT
pid=${PIDS[-1]}
for t in tEXt zTXt iTXt sPLT iCCP; do
	"$BOMB" chunk "$t" "$TMPD/chunk_$t.png"
	out=$("$H" request "$P3" POST /v1/encode image/png "$TMPD/chunk_$t.png" 2>"$TMPD/cb")
	st=$(field status "$out"); ms=$(field ms "$out")
	echo "3: $t chunk declaring 2 GiB ($(stat -c %s "$TMPD/chunk_$t.png") bytes): $st in $ms ms"
	check "3: $t 2-GiB chunk refused with 400 invalid_png (got $st: $(head -c 200 "$TMPD/cb"))" \
		bash -c "[ '$st' = 400 ] && jq -e '.error.code == \"invalid_png\"' '$TMPD/cb' >/dev/null"
	release_only "3: $t refused in under 50 ms ($ms)" ms_lt "$ms" 50
	keep_err "$TMPD/cb"
done
peak=$(rss_peak_mb "$pid")
echo "3: server peak RSS after the chunk bombs: $peak MB"
release_only "3: peak RSS under 100 MB ($peak MB)" test "$peak" -lt 100
"$BOMB" idat 7600 "$TMPD/idat8g.png"
"$BOMB" idat 2048 "$TMPD/idat2g.png"
out=$("$H" request "$P3" POST /v1/encode image/png "$TMPD/idat8g.png" 2>"$TMPD/ib")
echo "4: a $(stat -c %s "$TMPD/idat8g.png")-byte PNG inflating to 7.4 GiB: $out"
check "4: the IDAT bomb is refused with 400 invalid_png" \
	bash -c "[ '$(field status "$out")' = 400 ] && jq -e '.error.code == \"invalid_png\"' '$TMPD/ib' >/dev/null"
keep_err "$TMPD/ib"
# Four bomb clients in a loop for 3 s; meanwhile /livez and a valid encode.
stop_at=$(( $(date +%s) + 3 ))
cpids=()
for i in 1 2 3 4; do
	( f="$TMPD/idat8g.png"; [ "$i" = 4 ] && f="$TMPD/idat2g.png"
	  while [ "$(date +%s)" -lt "$stop_at" ]; do "$H" request "$P3" POST /v1/encode image/png "$f" 2>/dev/null; done ) > "$TMPD/bombs$i" &
	cpids+=($!)
done
sleep 0.3
lz_max=0; enc_max=0
for _ in $(seq 10); do
	ms=$(field ms "$("$H" request "$P3" GET /livez 2>/dev/null)")
	ms_lt "$lz_max" "$ms" && lz_max=$ms
	ms=$(field ms "$("$H" request "$P3" POST /v1/encode image/png "$D0" 2>/dev/null)")
	ms_lt "$enc_max" "$ms" && enc_max=$ms
	sleep 0.2
done
wait "${cpids[@]}"
nb=$(cat "$TMPD"/bombs* | wc -l); n400=$(cat "$TMPD"/bombs* | grep -c 'status=400')
echo "4: $nb bombs sent by 4 clients in 3 s, $n400 refused 400; slowest /livez $lz_max ms, slowest encode $enc_max ms"
check "4: every bomb refused with 400 ($n400 of $nb)" test "$n400" -eq "$nb" -a "$nb" -gt 4
release_only "4: /livez under 100 ms during the bombs ($lz_max)" ms_lt "$lz_max" 100
release_only "4: a valid encode under 500 ms during the bombs ($enc_max)" ms_lt "$enc_max" 500
# The same class in JSON: a body of 3.2 million numbers is held as its
# floats (13 MB), not as a tree of JSON nodes (the 6.4 MB body cost 260 MB).
{ printf '{"shape":[4096,784],"data":[0'; yes ',0' | head -n 3211263 | tr -d '\n'; printf ']}'; } > "$TMPD/big.json"
out=$("$H" request "$P3" POST /v1/encode application/json "$TMPD/big.json" 2>/dev/null)
echo "4: a $(stat -c %s "$TMPD/big.json")-byte JSON tensor of 4,096 images: $out"
check "4: the big JSON tensor is answered 200" test "$(field status "$out")" = 200
peak=$(rss_peak_mb "$pid")
echo "4: server peak RSS after the bombs and the big JSON: $peak MB"
release_only "4: peak RSS still under 100 MB ($peak MB)" test "$peak" -lt 100

# ---- 5. half-closed and aborted clients ----
out=$("$H" halfclose "$P3" /v1/reconstruct image/png "$D0" 40)
echo "5: half-closed clients: $out"
out=$("$H" abort "$P3" /v1/reconstruct image/png "$D0" 200)
echo "5: aborted clients: $out"
sleep 0.5
inflight=$(curl -s "http://127.0.0.1:$P3/metrics" | awk '/^aeserve_requests_in_flight / { print $2 }')
check "5: the in-flight gauge is back to 0 (got '$inflight')" test "$inflight" = 0
check "5: the server is alive" alive "$P3"
stop_server "$pid"
check "5: SIGTERM after them exits 0 at once, not after the drain bound (rc $RC, $STOP_MS ms)" test "$RC" -eq 0 -a "$STOP_MS" -lt 2000

# ---- 6. slowloris: 1,100 connections trickling header bytes ----
start_server "$TMPD/l6" --header-timeout 3 --log-format none models/ || bad "server did not start"
P6=$SRV_PORT
"$H" trickle "$P6" 1100 7 1000 > "$TMPD/trickle" &
tpid=$!
sleep 1
worst=0; fails=0
for _ in $(seq 10); do
	out=$("$H" request "$P6" POST /v1/encode image/png "$D0" 2>/dev/null)
	[ "$(field status "$out")" = 200 ] || fails=$((fails + 1))
	ms=$(field ms "$out"); ms_lt "$worst" "$ms" && worst=$ms
	sleep 0.4
done
wait "$tpid"
tr=$(cat "$TMPD/trickle")
echo "6: trickle: $tr; valid encodes meanwhile: $fails failed, slowest $worst ms"
check "6: valid requests answered during the trickle ($fails failed)" test "$fails" -eq 0
check "6: each answered in under a second ($worst ms)" ms_lt "$worst" 1000
check "6: all 1,100 trickling connections opened" test "$(field opened "$tr")" = 1100
check "6: and all closed by the server at the header deadline" test "$(field closed_by_server "$tr")" = 1100
check "6: none before 3 s, all by 5 s ($(field first_closed_s "$tr")..$(field last_closed_s "$tr") s)" \
	bash -c "awk -v a=$(field first_closed_s "$tr") -v b=$(field last_closed_s "$tr") 'BEGIN { exit !(a >= 2.9 && b <= 5.0) }'"

# ---- 7. a slow upload is not charged to the inference deadline ----
out=$("$H" slowbody "$P6" /v1/encode image/png "$D0" 7 2>"$TMPD/sb")
echo "7: a $(stat -c %s "$D0")-byte PNG sent over 7 s: $out"
check "7: answered 200" test "$(field status "$out")" = 200
out=$("$H" request "$P6" POST /v1/encode image/png "$D0" 2>/dev/null)
start_server "$TMPD/l7" --body-timeout 2 --log-format json models/ || bad "server did not start"
P7=$SRV_PORT
out=$("$H" slowbody "$P7" /v1/encode image/png "$D0" 5 2>/dev/null)
check "7: a body still arriving at --body-timeout is cut off ($out)" test "$(field status "$out")" = 0 -a "$(awk -v m="$(field ms "$out")" 'BEGIN{print (m < 3500)}')" = 1

# ---- 8. invalid UTF-8 in the path and the query ----
for path in '/v1/models/%ff%fe/encode' "/v1/models/$(printf '\xff\xfe')/encode" '/v1/encode?invert=%ff' \
	"/v1/encode?$(printf '\xc3\x28')=1" '/v1/models/%00/encode' '/v1/models/a%22b%5c/encode'; do
	out=$("$H" request "$P7" POST "$path" image/png "$D0" 2>"$TMPD/u8")
	st=$(field status "$out")
	check "8: $(printf '%q' "$path") answered 4xx with a JSON error (got $st: $(head -c 120 "$TMPD/u8" | tr -d '\0'))" \
		bash -c "[ '$st' -ge 400 ] && [ '$st' -lt 500 ] && jq -e '.error.code | type == \"string\"' '$TMPD/u8' >/dev/null"
	keep_err "$TMPD/u8"
done
sleep 0.2
check "8: every access-log line is valid JSON" jqe -s 'length >= 6' "$TMPD/l7"
check "8: and records the status each request got" bash -c "jq -r .status '$TMPD/l7' | grep -qv '^200$'"

# ---- 9. two servers on one port ----
expect_fail "9: a second server on a port in use refuses to start" "address already in use" \
	"$BUILD/aeserve" --port "$P7" --log-format none models/mnist.safetensors
check "9: the first keeps serving" alive "$P7"

# ---- 10. SIGHUP is not fatal ----
kill -HUP "${PIDS[-1]}"; sleep 0.3
check "10: alive after SIGHUP" alive "$P7"
check "10: and says what it did with it" grep -q 'SIGHUP' "$TMPD/l7.err"
kill -USR1 "${PIDS[-1]}"; kill -USR2 "${PIDS[-1]}"; sleep 0.3
check "10: alive after SIGUSR1 and SIGUSR2" alive "$P7"

# ---- 12. smaller ones ----
U="http://127.0.0.1:$P7"
# err12 STATUS CODE what curl-args...: expect_error, the body kept for the schema check.
err12() { expect_error "12: $3" "$1" "$2" "${@:4}"; keep_err "$BODY"; }
err12 400 invalid_parameter "?resize=maybe" "${P[@]}" --data-binary @"$D0" "$U/v1/encode?resize=maybe"
err12 400 invalid_parameter "?invert=2" "${P[@]}" --data-binary @"$D0" "$U/v1/encode?invert=2"
check "12: ... naming invert" grep -q invert "$BODY"
err12 400 invalid_parameter "a parameter the operation does not take" "${P[@]}" --data-binary @"$D0" "$U/v1/encode?quantile=0.5"
check "12: ... naming it" grep -q quantile "$BODY"
expect_status "12: ?invert=false&resize=0 accepted" 200 "${P[@]}" --data-binary @"$D0" "$U/v1/encode?invert=false&resize=0"
err12 415 unsupported_media_type "image/pngfoo" -H 'Content-Type: image/pngfoo' --data-binary @"$D0" "$U/v1/encode"
expect_status "12: IMAGE/PNG with a parameter is PNG" 200 -H 'Content-Type: IMAGE/PNG; charset=binary' --data-binary @"$D0" "$U/v1/encode"
long=$(head -c 20000 /dev/zero | tr '\0' a)
err12 414 uri_too_long "a 20 kB URL" "$U/v1/models/$long"
err12 431 headers_too_large "20 kB of headers" -H "X-Big: $long" "$U/livez"
"$H" abort "$P7" /v1/reconstruct image/png "$D0" 20 >/dev/null
sleep 0.3
curl -s "$U/metrics" > "$TMPD/m12"
check "12: metrics label statuses by their code, never other0" bash -c "! grep -q 'other0' '$TMPD/m12' && grep -q 'status=\"414\"' '$TMPD/m12'"
check "12: client aborts counted as 499" grep -q 'status="499"' "$TMPD/m12"
long=$(head -c 40000 /dev/zero | tr '\0' a)
expect_status "12: past libmicrohttpd's 32 KiB buffer a 40 kB URL is still 414, its HTML body" 414 "$U/v1/models/$long"
check "12: the server is alive after it" alive "$P7"

errs=("$TMPD"/errs/*.json)
check "every error body met matches openapi.yaml's Error (${#errs[@]} bodies)" \
	node tests/openapi/check.mjs response openapi.yaml Error "$TMPD"/errs/*.json

done_tests
