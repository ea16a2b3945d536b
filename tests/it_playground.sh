#!/usr/bin/env bash
# The playground page: how it is served (content types, ETag and 304,
# Content-Security-Policy, --no-playground, no key needed to load it), then
# Debian's chromium driving it against a running aeserve
# (tests/browser/playground.mjs): draw, drop a digit and a Fashion-MNIST
# image, move a slider, a phone's width and touch, a server with API keys.
# SHOTS=DIR keeps the browser's screenshots there (make screenshots).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh

PORT=$((20000 + ($$ * 23) % 12000))
U=http://127.0.0.1:$PORT
start_server "$PORT" "$TMPD/log" --default mnist --log-format none models/ || exit 1

hdr() { curl -s -o /dev/null -D - "$@" | tr -d '\r'; }
h=$(hdr "$U/")
check "/ is the page" grep -qx 'Content-Type: text/html; charset=utf-8' <<<"$h"
check "/ has a CSP that allows nothing from other origins" \
	grep -qx "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" <<<"$h"
check "/ is revalidated each time" grep -qx 'Cache-Control: no-cache' <<<"$h"
etag=$(sed -n 's/^ETag: //p' <<<"$h")
check "/ has an ETag" grep -qE '^"[0-9a-f]{16}"$' <<<"$etag"
check "If-None-Match with it: 304" test "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$U/")" = 304
check "a weak match among others: 304" \
	test "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: \"x\", W/$etag" "$U/")" = 304
check "another ETag: 200" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "0000000000000000"' "$U/")" = 200
for f in app.js:text/javascript style.css:text/css favicon.svg:image/svg+xml samples/digits.png:image/png \
	samples/fashion.json:application/json; do
	t=$(curl -s -o /dev/null -w '%{content_type}' "$U/ui/${f%%:*}")
	check "/ui/${f%%:*} is ${f#*:} ($t)" grep -q "^${f#*:}" <<<"$t"
done
check "the page as served is the file in the tree" cmp -s <(curl -s "$U/ui/app.js") server/web/app.js
check "a file that is not there: 404 JSON" \
	test "$(curl -s -w '%{http_code}' "$U/ui/nope.js" | tail -c 3)" = 404
check "POST /: 405" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/")" = 405
check "the page counts in the metrics" grep -q 'aeserve_http_requests_total{route="page",status="200"}' <(curl -s "$U/metrics")

# --no-playground, and with API keys the page loads without one.
P2=$((PORT + 1))
start_server "$P2" "$TMPD/log2" --no-playground --log-format none models/mnist.safetensors || exit 1
check "--no-playground: / is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/")" = 404
KEY=playground-test-key-0123456789
echo "$KEY" > "$TMPD/keys"
P3=$((PORT + 2))
start_server "$P3" "$TMPD/log3" --api-keys "$TMPD/keys" --log-format none models/ || exit 1
check "with keys, the page loads without one" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P3/")" = 200
check "with keys, the API still needs one" \
	test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P3/v1/models")" = 401

# ---- the browser ----
B=tests/browser
if ! command -v "${CHROMIUM:-chromium}" >/dev/null; then
	bad "chromium is not installed (deploy/install-deps.sh installs it)"
	done_tests
	exit
fi
if [ ! -d "$B/node_modules" ]; then (cd "$B" && npm ci --silent --no-audit --no-fund); fi
T=$BUILD/aetrain
"$T" export tests/fixtures/digits --limit 1 --out "$TMPD/d" >/dev/null
"$T" export tests/fixtures/fashion --limit 1 --out "$TMPD/f" >/dev/null
SHOTS=${SHOTS:-$TMPD}
out=$(node "$B/playground.mjs" "$U/" "$TMPD/d/00000.png" "$TMPD/f/00000.png" "$SHOTS" 2>&1)
echo "$out" | grep -v '^ok'
check "the page at work in chromium" bash -c "! grep -q '^not ok' <<<\"\$1\" && grep -q first_reconstruction_ms <<<\"\$1\"" _ "$out"
check "two screenshots" test -s "$SHOTS/playground-desktop.png" -a -s "$SHOTS/playground-phone.png"
out=$(node "$B/playground.mjs" --key "http://127.0.0.1:$P3/" "$KEY" 2>&1)
echo "$out" | grep -v '^ok'
check "the page asks for the API key, and works with it" bash -c "! grep -q '^not ok' <<<\"\$1\" && grep -q '^ok' <<<\"\$1\"" _ "$out"
done_tests
