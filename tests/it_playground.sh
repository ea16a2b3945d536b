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

start_server "$TMPD/log" --default mnist --log-format none models/ || exit 1
U=$SRV_URL

hdr() { curl -s -o /dev/null -D - "$@" | tr -d '\r'; }
h=$(hdr "$U/")
check "/ is the page" grep -qx 'Content-Type: text/html; charset=utf-8' <<<"$h"
check "/ has a CSP that allows nothing from other origins" \
	grep -qx "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" <<<"$h"
check "/ is revalidated each time" grep -qx 'Cache-Control: no-cache' <<<"$h"
etag=$(sed -n 's/^ETag: //p' <<<"$h")
check "/ has an ETag" grep -qE '^"[0-9a-f]{16}"$' <<<"$etag"
expect_status "If-None-Match with it: 304" 304 -H "If-None-Match: $etag" "$U/"
expect_status "a weak match among others: 304" 304 -H "If-None-Match: \"x\", W/$etag" "$U/"
expect_status "another ETag: 200" 200 -H 'If-None-Match: "0000000000000000"' "$U/"
for f in app.js:text/javascript style.css:text/css favicon.svg:image/svg+xml samples/digits.png:image/png \
	samples/fashion.json:application/json; do
	t=$(curl -s -o /dev/null -w '%{content_type}' "$U/ui/${f%%:*}")
	check "/ui/${f%%:*} is ${f#*:} ($t)" grep -q "^${f#*:}" <<<"$t"
done
check "the page as served is the file in the tree" cmp -s <(curl -s "$U/ui/app.js") server/web/app.js
expect_error "a file that is not there: 404 JSON" 404 not_found "$U/ui/nope.js"
expect_status "POST /: 405" 405 -X POST "$U/"
check "the page counts in the metrics" grep -q 'aeserve_http_requests_total{route="page",status="200"}' <(curl -s "$U/metrics")

# --no-playground, and with API keys the page loads without one.
start_server "$TMPD/log2" --no-playground --log-format none models/mnist.safetensors || exit 1
expect_status "--no-playground: / is 404" 404 "$SRV_URL/"
KEY=playground-test-key-0123456789
echo "$KEY" > "$TMPD/keys"
start_server "$TMPD/log3" --api-keys "$TMPD/keys" --log-format none models/ || exit 1
U3=$SRV_URL
expect_status "with keys, the page loads without one" 200 "$U3/"
expect_status "with keys, the API still needs one" 401 "$U3/v1/models"

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
out=$(node "$B/playground.mjs" --key "$U3/" "$KEY" 2>&1)
echo "$out" | grep -v '^ok'
check "the page asks for the API key, and works with it" bash -c "! grep -q '^not ok' <<<\"\$1\" && grep -q '^ok' <<<\"\$1\"" _ "$out"
done_tests
