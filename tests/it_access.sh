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
jqe() { jq -e "$@" >/dev/null; }
T="$BUILD/aetrain"
H="$BUILD/tests/tools/hostile"
PORT=$((20000 + ($$ * 17) % 12000))
U="http://127.0.0.1:$PORT"

"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 1 >/dev/null
D0="$TMPD/digits/00000.png"
KEY1=k1-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEY2=k2-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '# keys for the test\n%s\n\n' "$KEY1" > "$TMPD/keys"

start_server "$PORT" "$TMPD/log" --api-keys "$TMPD/keys" --log-format json --default mnist models/ || { done_tests; exit 1; }
SPID=${PIDS[-1]}
code() { curl -s -o "$TMPD/body" -D "$TMPD/hdrs" -w '%{http_code}' "$@"; }
P=(-H "Content-Type: image/png" --data-binary @"$D0")

check "no key: 401" test "$(code "${P[@]}" "$U/v1/encode")" = 401
check "no key: WWW-Authenticate Bearer" grep -qi '^WWW-Authenticate: Bearer realm="aeserve"' "$TMPD/hdrs"
check "no key: JSON error" jqe '.error.code == "unauthorized"' "$TMPD/body"
check "wrong key: 401" test "$(code -H "Authorization: Bearer ${KEY1}x" "${P[@]}" "$U/v1/encode")" = 401
check "wrong key: invalid_token" grep -qi 'error="invalid_token"' "$TMPD/hdrs"
check "a prefix of the key: 401" test "$(code -H "Authorization: Bearer ${KEY1:0:20}" "${P[@]}" "$U/v1/encode")" = 401
check "another scheme: 401" test "$(code -H "Authorization: Basic $KEY1" "${P[@]}" "$U/v1/encode")" = 401
check "V2 without a key: 401, the protocol's error" test "$(code "$U/v2/models/mnist")" = 401
check "V2 error body" jqe '(.error | type) == "string"' "$TMPD/body"
check "repository without a key: 401" test "$(code -X POST "$U/v2/repository/index")" = 401
check "metrics without a key: 401" test "$(code "$U/metrics")" = 401
for h in /livez /readyz /v2/health/live /v2/health/ready; do
	check "$h without a key: 200" test "$(code "$U$h")" = 200
done
A=(-H "Authorization: Bearer $KEY1")
check "the key: 200" test "$(code "${A[@]}" "${P[@]}" "$U/v1/encode")" = 200
check "the key, scheme in lower case: 200" test "$(code -H "Authorization: bearer $KEY1" "$U/v1/models")" = 200
check "V2 with the key: 200" test "$(code "${A[@]}" "$U/v2/models/mnist")" = 200
check "repository with the key: 200" test "$(code "${A[@]}" -X POST "$U/v2/repository/index")" = 200
check "metrics with the key: 200" test "$(code "${A[@]}" "$U/metrics")" = 200

# keys reread on SIGHUP: KEY2 in, KEY1 out
printf '%s\n' "$KEY2" > "$TMPD/keys"
kill -HUP "$SPID"
for _ in $(seq 40); do grep -q "1 API keys" "$TMPD/log.err" && break; sleep 0.05; done
check "after SIGHUP the new key: 200" test "$(code -H "Authorization: Bearer $KEY2" "$U/v1/models")" = 200
check "after SIGHUP the old key: 401" test "$(code "${A[@]}" "$U/v1/models")" = 401
printf 'short\n' > "$TMPD/keys"
kill -HUP "$SPID"
for _ in $(seq 40); do grep -q "API keys not reread" "$TMPD/log.err" && break; sleep 0.05; done
check "a bad key file on SIGHUP: the keys stay" test "$(code -H "Authorization: Bearer $KEY2" "$U/v1/models")" = 200
check "... and the reason is logged by line" grep -q "line 1: a key is 16 to 256" "$TMPD/log.err"

# request ids
code -H "Authorization: Bearer $KEY2" -H "X-Request-Id: trace-abc.123" "$U/v1/models" >/dev/null
check "X-Request-Id echoed" grep -qi '^X-Request-Id: trace-abc.123' "$TMPD/hdrs"
code -H "X-Request-Id: bad id <script>" "$U/livez" >/dev/null
id=$(tr -d '\r' < "$TMPD/hdrs" | sed -n 's/^X-Request-Id: //Ip')
check "a bad X-Request-Id replaced by ours ($id)" grep -qE '^[0-9a-f]{16}$' <<<"$id"
check "the id in the access log" grep -q '"request_id":"trace-abc.123"' "$TMPD/log"
check "our id in the access log" grep -q "\"request_id\":\"$id\"" "$TMPD/log"
check "access log lines are JSON" jqe . "$TMPD/log" >/dev/null
check "no key in any log" bash -c "! grep -qF -e '$KEY1' -e '$KEY2' '$TMPD/log' '$TMPD/log.err'"
stop_server "$SPID"

# --metrics-public; a missing or empty key file stops the start
P2=$((PORT + 1))
start_server "$P2" "$TMPD/log2" --api-keys "$TMPD/keys2" models/ 2>/dev/null
check "a missing key file: no start" grep -q "api-keys" "$TMPD/log2.err"
printf '%s\n' "$KEY1" > "$TMPD/keys2"
start_server "$P2" "$TMPD/log2" --api-keys "$TMPD/keys2" --metrics-public --log-format none models/ || bad "start"
check "--metrics-public: /metrics without a key" test "$(code "http://127.0.0.1:$P2/metrics")" = 200
check "--metrics-public: inference still needs one" test "$(code "${P[@]}" "http://127.0.0.1:$P2/v1/encode")" = 401
stop_server "${PIDS[-1]}"

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
	P3=$((PORT + 2))
	start_server_tls() {
		"$BUILD/aeserve" --port "$P3" --tls-cert "$TMPD/cert.pem" --tls-key "$TMPD/key.pem" --log-format none \
			--default mnist models/ > "$TMPD/log3" 2> "$TMPD/log3.err" &
		PIDS+=($!)
		for _ in $(seq 200); do curl -sf --cacert "$TMPD/cert.pem" "https://127.0.0.1:$P3/readyz" >/dev/null && return 0; sleep 0.05; done
		return 1
	}
	if start_server_tls; then
		S="https://127.0.0.1:$P3"
		check "HTTPS encode with the self-signed certificate" test "$(code --cacert "$TMPD/cert.pem" "${P[@]}" "$S/v1/encode")" = 200
		check "HTTPS answer" jqe '.shape == [1,16]' "$TMPD/body"
		check "HTTPS V2 infer (raw PNG)" test "$(code --cacert "$TMPD/cert.pem" -H "Inference-Header-Content-Length: 0" --data-binary @"$D0" "$S/v2/models/mnist/infer")" = 200
		check "TLS 1.2 taken" test "$(code --cacert "$TMPD/cert.pem" --tlsv1.2 --tls-max 1.2 "$S/livez")" = 200
		check "TLS 1.3 taken" test "$(code --cacert "$TMPD/cert.pem" --tlsv1.3 "$S/livez")" = 200
		check "TLS 1.1 refused" test "$(code --cacert "$TMPD/cert.pem" --tlsv1.1 --tls-max 1.1 "$S/livez")" = 000
		check "plain HTTP on the HTTPS port gets no answer" test "$(code -m 3 "http://127.0.0.1:$P3/livez")" != 200
		check "an unknown certificate is refused by curl" test "$(code "$S/livez")" = 000
		stop_server "${PIDS[-1]}"
		check "HTTPS server exit 0" test "$RC" = 0
	else
		bad "the HTTPS server did not start: $(cat "$TMPD/log3.err")"
	fi
	expect_fail "a key that is not the certificate's" "cannot start the HTTPS server" \
		"$BUILD/aeserve" --port $((PORT + 3)) --tls-cert "$TMPD/cert.pem" --tls-key "$TMPD/cert.pem" models/
else
	bad "certtool (gnutls-bin) is not installed: TLS untested"
fi
expect_fail "--tls-cert alone" "go together" "$BUILD/aeserve" --tls-cert x models/

# ---- SIGTERM under load ----
P4=$((PORT + 4))
start_server "$P4" "$TMPD/log4" --drain-delay 2 --drain-timeout 10 --log-format none --default mnist models/ || bad "start"
SPID=${PIDS[-1]}
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
