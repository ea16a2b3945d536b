#!/usr/bin/env bash
# Access control, TLS, request ids and the drain under load:
#  - --api-keys: every route but health needs "Authorization: Bearer KEY"
#    (401 with WWW-Authenticate otherwise), /metrics too unless
#    --metrics-public, keys reread on SIGHUP, never written to any log;
#  - --tls-cert/--tls-key: HTTPS with a self-signed certificate made by
#    certtool, TLS 1.2 or newer only;
#  - X-Request-Id taken from the request or made, echoed and logged;
#  - SIGTERM under load: /readyz 503 at once, no accepted request fails,
#    exit 0 within the drain bound.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"
H="$BUILD/tests/tools/hostile"

"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 1 >/dev/null
D0="$TMPD/digits/00000.png"
KEY1=k1-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEY2=k2-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '# keys for the test\n%s\n\n' "$KEY1" > "$TMPD/keys"

start_server "$TMPD/log" --api-keys "$TMPD/keys" --log-format json --default mnist models/ || { done_tests; exit 1; }
SPID=$SRV_PID U=$SRV_URL
P=(-H "Content-Type: image/png" --data-binary @"$D0")

expect_error "no key" 401 unauthorized "${P[@]}" "$U/v1/encode"
check "no key: WWW-Authenticate Bearer" grep -qi '^WWW-Authenticate: Bearer realm="aeserve"' "$HEADERS"
expect_status "wrong key: 401" 401 -H "Authorization: Bearer ${KEY1}x" "${P[@]}" "$U/v1/encode"
check "wrong key: invalid_token" grep -qi 'error="invalid_token"' "$HEADERS"
expect_status "a prefix of the key: 401" 401 -H "Authorization: Bearer ${KEY1:0:20}" "${P[@]}" "$U/v1/encode"
expect_status "another scheme: 401" 401 -H "Authorization: Basic $KEY1" "${P[@]}" "$U/v1/encode"
expect_status "V2 without a key: 401, the protocol's error" 401 "$U/v2/models/mnist"
check "V2 error body" jqe '(.error | type) == "string"' "$BODY"
expect_status "repository without a key: 401" 401 -X POST "$U/v2/repository/index"
expect_status "metrics without a key: 401" 401 "$U/metrics"
for h in /livez /readyz /v2/health/live /v2/health/ready; do
	expect_status "$h without a key: 200" 200 "$U$h"
done
A=(-H "Authorization: Bearer $KEY1")
expect_status "the key: 200" 200 "${A[@]}" "${P[@]}" "$U/v1/encode"
expect_status "the key, scheme in lower case: 200" 200 -H "Authorization: bearer $KEY1" "$U/v1/models"
expect_status "V2 with the key: 200" 200 "${A[@]}" "$U/v2/models/mnist"
expect_status "repository with the key: 200" 200 "${A[@]}" -X POST "$U/v2/repository/index"
expect_status "metrics with the key: 200" 200 "${A[@]}" "$U/metrics"

# keys reread on SIGHUP: KEY2 in, KEY1 out
printf '%s\n' "$KEY2" > "$TMPD/keys"
kill -HUP "$SPID"
check "SIGHUP rereads the keys" wait_until 2 grep -q "1 API keys" "$TMPD/log.err"
expect_status "after SIGHUP the new key: 200" 200 -H "Authorization: Bearer $KEY2" "$U/v1/models"
expect_status "after SIGHUP the old key: 401" 401 "${A[@]}" "$U/v1/models"
printf 'short\n' > "$TMPD/keys"
kill -HUP "$SPID"
check "SIGHUP with a bad key file says so" wait_until 2 grep -q "API keys not reread" "$TMPD/log.err"
expect_status "a bad key file on SIGHUP: the keys stay" 200 -H "Authorization: Bearer $KEY2" "$U/v1/models"
check "... and the reason is logged by line" grep -q "line 1: a key is 16 to 256" "$TMPD/log.err"

# request ids
expect_status "a request with an id" 200 -H "Authorization: Bearer $KEY2" -H "X-Request-Id: trace-abc.123" "$U/v1/models"
check "X-Request-Id echoed" grep -qi '^X-Request-Id: trace-abc.123' "$HEADERS"
expect_status "a request with a bad id" 200 -H "X-Request-Id: bad id <script>" "$U/livez"
id=$(tr -d '\r' < "$HEADERS" | sed -n 's/^X-Request-Id: //Ip')
check "a bad X-Request-Id replaced by ours ($id)" grep -qE '^[0-9a-f]{16}$' <<<"$id"
check "the id in the access log" grep -q '"request_id":"trace-abc.123"' "$TMPD/log"
check "our id in the access log" grep -q "\"request_id\":\"$id\"" "$TMPD/log"
check "access log lines are JSON" jqe . "$TMPD/log"
check "no key in any log" bash -c "! grep -qF -e '$KEY1' -e '$KEY2' '$TMPD/log' '$TMPD/log.err'"
stop_server "$SPID"

# --metrics-public; a missing or empty key file stops the start
expect_fail "a missing key file: no start" "--api-keys: " "$BUILD/aeserve" --port 0 --api-keys "$TMPD/keys2" models/
printf '%s\n' "$KEY1" > "$TMPD/keys2"
start_server "$TMPD/log2" --api-keys "$TMPD/keys2" --metrics-public --log-format none models/ || bad "start"
expect_status "--metrics-public: /metrics without a key" 200 "$SRV_URL/metrics"
expect_status "--metrics-public: inference still needs one" 401 "${P[@]}" "$SRV_URL/v1/encode"
stop_server "$SRV_PID"

# ---- TLS ----
if command -v certtool >/dev/null; then
	certtool --generate-privkey --key-type ecdsa --outfile "$TMPD/key.pem" 2>/dev/null
	cat > "$TMPD/cert.tmpl" <<EOF
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
expiration_days = 2
tls_www_server
EOF
	certtool --generate-self-signed --load-privkey "$TMPD/key.pem" --template "$TMPD/cert.tmpl" \
		--outfile "$TMPD/cert.pem" 2>/dev/null
	if start_server "$TMPD/log3" --tls-cert "$TMPD/cert.pem" --tls-key "$TMPD/key.pem" --log-format none \
		--default mnist models/; then
		S="https://127.0.0.1:$SRV_PORT" C=(--cacert "$TMPD/cert.pem")
		check "the serving line says https" grep -q "on https://127.0.0.1:$SRV_PORT" "$TMPD/log3.err"
		expect_status "HTTPS /readyz with the self-signed certificate" 200 "${C[@]}" "$S/readyz"
		expect_status "HTTPS encode" 200 "${C[@]}" "${P[@]}" "$S/v1/encode"
		check "HTTPS answer" jqe '.shape == [1,16]' "$BODY"
		expect_status "HTTPS V2 infer (raw PNG)" 200 "${C[@]}" -H "Inference-Header-Content-Length: 0" --data-binary @"$D0" "$S/v2/models/mnist/infer"
		expect_status "TLS 1.2 taken" 200 "${C[@]}" --tlsv1.2 --tls-max 1.2 "$S/livez"
		expect_status "TLS 1.3 taken" 200 "${C[@]}" --tlsv1.3 "$S/livez"
		expect_status "TLS 1.1 refused" 000 "${C[@]}" --tlsv1.1 --tls-max 1.1 "$S/livez"
		check "plain HTTP on the HTTPS port gets no answer" test "$(http_status -m 3 "http://127.0.0.1:$SRV_PORT/livez")" != 200
		expect_status "an unknown certificate is refused by curl" 000 "$S/livez"
		stop_server "$SRV_PID"
		check "HTTPS server exit 0" test "$RC" = 0
	else
		bad "the HTTPS server did not start"
	fi
	expect_fail "a key that is not the certificate's" "cannot start the HTTPS server" \
		"$BUILD/aeserve" --port 0 --tls-cert "$TMPD/cert.pem" --tls-key "$TMPD/cert.pem" models/
else
	bad "certtool (gnutls-bin) is not installed: TLS untested"
fi
expect_fail "--tls-cert alone" "go together" "$BUILD/aeserve" --tls-cert x models/

# ---- SIGTERM under load ----
start_server "$TMPD/log4" --drain-delay 2 --drain-timeout 10 --log-format none --default mnist models/ || bad "start"
SPID=$SRV_PID P4=$SRV_PORT
printf '1 200 POST /v1/encode image/png %s -\n' "$D0" > "$TMPD/spec"
HOSTILE_REFUSED_OK=1 "$H" soak "$P4" 8 8 0 "$TMPD/spec" > "$TMPD/drain.txt" 2>&1 &
LOADER=$!
sleep 2.5
kill -TERM "$SPID"
t0=$(date +%s%N)
r=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P4/readyz")
ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "SIGTERM under load: /readyz 503 at once ($r in $ready_ms ms)" test "$r" = 503
for _ in $(seq 300); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$SPID"
RC=$?
wait "$LOADER"
total=$(grep '^total' "$TMPD/drain.txt")
echo "drain: exit $RC after $stop_ms ms; $total"
check "SIGTERM under load: exit 0" test "$RC" = 0
check "SIGTERM under load: within the bound ($stop_ms ms <= 2 s delay + 10 s timeout)" test "$stop_ms" -le 12500
check "SIGTERM under load: no accepted request failed" grep -q 'valid_failed=0 ' <<<"$total"
# shellcheck disable=SC2016 # an awk program
check "SIGTERM under load: served during the delay, refused after" \
	awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } } END { exit !(v["valid"] > 100 && v["refused"] > 0) }' <<<"$total"

done_tests
