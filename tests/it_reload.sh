#!/usr/bin/env bash
# Hot reload under load: clients keep asking model "m" (V2 JSON and /v1,
# every answer compared with the one before the load) while, every 2 s, the
# model file is replaced and reloaded by SIGHUP or by the repository call;
# one reload in four is of a corrupt file and one of a file still being
# written. No request may fail, the bad reloads must be refused and
# reported (the call's answer, a log line, the metric) with the old model
# still answering. Then the repository's other promises: load, unload,
# index, names that cannot reach outside the model folder.
#
# RELOAD_SECONDS (default 20; `make reload-test` runs 60).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"
H="$BUILD/tests/tools/hostile"
C="$BUILD/tests/tools/v2codec"
SECS=${RELOAD_SECONDS:-20}
M="$TMPD/models"

"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 1 >/dev/null
D0="$TMPD/digits/00000.png"
mkdir -p "$M"
cp models/fashion.safetensors "$M/"
cp models/mnist.safetensors "$M/m.safetensors"
GOOD="$TMPD/good.safetensors"
cp models/mnist.safetensors "$GOOD"
start_server "$TMPD/log" --default fashion --log-format none "$M" || { done_tests; exit 1; }
SPID=$SRV_PID PORT=$SRV_PORT U=$SRV_URL

jq -c -n --argjson p "$("$C" pixels "$D0")" '{id: "r", inputs: [{name: "input", shape: [1,784], datatype: "FP32", data: $p}]}' > "$TMPD/req.json"
cat > "$TMPD/spec" <<EOF
4 200 POST /v2/models/m/infer application/json $TMPD/req.json -
3 200 POST /v1/models/m/encode image/png $D0 -
1 200 POST /v1/models/m/anomaly image/png $D0 -
EOF
checksum() { curl -s "$U/v2/models/m" | jq -r .parameters.checksum; }
SUM0=$(checksum)
loads() { curl -s "$U/metrics" | sed -n "s/^aeserve_model_loads_total{result=\"$1\"} //p"; }
F0=$(loads failed)
# put SRC: replaces the model file atomically (a new file renamed over it).
put() { cp "$1" "$M/.m.tmp" && mv "$M/.m.tmp" "$M/m.safetensors"; }
load() { http_status -X POST "$U/v2/repository/models/m/load"; }

"$H" soak "$PORT" "$SECS" 8 0 "$TMPD/spec" > "$TMPD/soak.txt" 2>&1 &
LOADER=$!
t0=$(date +%s)
k=0 good=0 refused=0 old_answers=0
while [ $(($(date +%s) - t0)) -lt $((SECS - 1)) ]; do
	case $((k % 4)) in
	0) # a new file, by SIGHUP
		n0=$(grep -c "model 'm' loaded" "$TMPD/log.err")
		put "$GOOD"; kill -HUP "$SPID"
		for _ in $(seq 20); do [ "$(grep -c "model 'm' loaded" "$TMPD/log.err")" -gt "$n0" ] && break; sleep 0.05; done
		[ "$(grep -c "model 'm' loaded" "$TMPD/log.err")" -gt "$n0" ] && good=$((good + 1)) ;;
	1) # a new file, by the repository call
		put "$GOOD"; [ "$(load)" = 200 ] && good=$((good + 1)) ;;
	2) # a corrupt file: one byte of the weights changed
		cp "$GOOD" "$TMPD/bad.safetensors"
		printf '\x55' | dd of="$TMPD/bad.safetensors" bs=1 seek=$(( $(stat -c %s "$GOOD") - 100 )) conv=notrunc status=none
		put "$TMPD/bad.safetensors"
		code=$(load)
		[ "$code" = 422 ] && grep -q "checksum" "$BODY" && refused=$((refused + 1))
		[ "$(checksum)" = "$SUM0" ] && old_answers=$((old_answers + 1))
		put "$GOOD" ;;
	3) # a file still being written when SIGHUP comes
		f0=$(grep -c "load of model 'm' failed" "$TMPD/log.err")
		head -c 1500 "$GOOD" > "$M/m.safetensors"
		kill -HUP "$SPID"
		for _ in $(seq 20); do [ "$(grep -c "load of model 'm' failed" "$TMPD/log.err")" -gt "$f0" ] && break; sleep 0.05; done
		[ "$(grep -c "load of model 'm' failed" "$TMPD/log.err")" -gt "$f0" ] && refused=$((refused + 1))
		[ "$(checksum)" = "$SUM0" ] && old_answers=$((old_answers + 1))
		cat "$GOOD" > "$M/m.safetensors" ;;
	esac
	k=$((k + 1))
	sleep 1.7
done
wait "$LOADER"
LRC=$?
total=$(grep '^total' "$TMPD/soak.txt")
echo "reload: $k reloads in ${SECS}s ($good good, $refused bad refused, old model answering after $old_answers); $total"
check "load: no request failed ($total)" test "$LRC" = 0
check "load: requests answered" test "$(sed -n 's/.* valid=\([0-9]*\).*/\1/p' <<<"$total")" -gt 100
check "reloads: one every 2 s" test "$k" -ge $((SECS / 2 - 1))
check "good reloads all took" test "$good" -ge $(( (k + 2) / 4 + (k + 1) / 4 - 1 ))
check "bad reloads refused, old model answering" test "$old_answers" -ge $(( (k + 1) / 4 + k / 4 - 1 ))
F1=$(loads failed)
check "failed reloads counted ($F0 -> $F1)" test "$F1" -ge $((F0 + (k + 1) / 4 + k / 4 - 1))
check "failed reloads logged" grep -q "load of model 'm' failed" "$TMPD/log.err"
check "the corrupt file's message names the checksum" grep -q "checksum" "$TMPD/log.err"
check "still the same model" test "$(checksum)" = "$SUM0"
inmem=$(curl -s "$U/metrics" | sed -n 's/^aeserve_models_in_memory //p')
check "every replaced model freed once its requests ended (in memory: $inmem, served: 2)" test "$inmem" = 2
check "bad reloads refused: one in two" test "$refused" -ge $(( (k + 1) / 4 + k / 4 - 1 ))

# ---- a different model under the same name ----
put models/mnist-denoise.safetensors
expect_status "load a different file: 200" 200 -X POST "$U/v2/repository/models/m/load"
check "its checksum now" test "$(checksum)" = "$(curl -s "$U/v1/models/m" | jq -r .checksum)"
check "a different checksum" test "$(checksum)" != "$SUM0"

# ---- the repository ----
idx=$(curl -s -X POST "$U/v2/repository/index")
check "index: both models READY" jqe '[.[] | select(.state == "READY") | .name] == ["fashion","m"]' <<<"$idx"
expect_status "unload" 200 -X POST "$U/v2/repository/models/m/unload"
expect_status "unloaded: 404" 404 "$U/v2/models/m/ready"
idx=$(curl -s -X POST "$U/v2/repository/index")
check "index: m UNAVAILABLE" jqe '.[] | select(.name == "m") | .state == "UNAVAILABLE"' <<<"$idx"
check "index ready-only" jqe '[.[].name] == ["fashion"]' <<<"$(curl -s -X POST -d '{"ready":true}' "$U/v2/repository/index")"
R=$U/v2/repository/models
expect_status "load again" 200 -X POST "$R/m/load"
expect_status "the default model stays" 409 -X POST "$R/fashion/unload"
expect_status "load a name with no file: 404" 404 -X POST "$R/nothere/load"
expect_status "a name starting with '.': 400" 400 -X POST "$R/.m/load"
expect_status "a name with '..' and '/': no route" 404 -X POST "$R/..%2F..%2Fetc%2Fpasswd/load"
ln -s /etc/hostname "$M/evil.safetensors"
expect_status "a link out of the folder: 400" 400 -X POST "$R/evil/load"
check "its message" grep -q "inside the model folder" "$BODY"
expect_status "unknown member in a load body" 400 -X POST -d '{"parameters":{"config":"x"}}' "$R/m/load"
expect_status "a load body that is not JSON" 400 -X POST -d 'load it' "$R/m/load"

# Repository calls come only from loopback when there are no keys.
ext=$(hostname -I 2>/dev/null | awk '{print $1}')
if [ -z "$ext" ]; then
	skip "repository calls from another address (this machine has no address but loopback)"
elif mkdir -p "$TMPD/ext" && cp "$GOOD" "$TMPD/ext/m.safetensors" &&
	start_server "$TMPD/log2" --addr 0.0.0.0 --log-format none "$TMPD/ext"; then
	expect_status "repository from $ext without keys: 403" 403 -X POST "http://$ext:$SRV_PORT/v2/repository/index"
	expect_status "inference from $ext: 200" 200 "http://$ext:$SRV_PORT/v2/models/m"
else
	bad "a server on 0.0.0.0 did not start"
fi

stop_server "$SPID"
check "exit 0 after the reloads" test "$RC" = 0
done_tests
