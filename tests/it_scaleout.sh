#!/usr/bin/env bash
# Scale-out: nginx (deploy/nginx/aeserve.conf) in front of three aeserve
# replicas on loopback; load through nginx while each replica in turn is
# restarted (SIGTERM, wait for it to exit, start it again), the rolling
# update Kubernetes performs: no request may fail. Then req/s through
# nginx beside req/s from one replica alone.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"
H="$BUILD/tests/tools/hostile"
SECS=${SCALEOUT_SECONDS:-24}
if ! command -v nginx >/dev/null; then bad "nginx is not installed"; done_tests; exit 1; fi

"$T" export tests/fixtures/digits --out "$TMPD/digits" --limit 1 >/dev/null
D0="$TMPD/digits/00000.png"
ARGS=(--drain-delay 1 --drain-timeout 5 --log-format none --workers 1 --default mnist models/)
declare -A RPID
# start_replica LOG [--port N]: a replica, on a free port or on port N (a
# restart: nginx's configuration names the port).
start_replica() { start_server "$@" "${ARGS[@]}" && RPID[$SRV_PORT]=$SRV_PID; }
R=()
for i in 1 2 3; do
	if start_replica "$TMPD/r$i"; then R+=("$SRV_PORT"); else bad "replica $i did not start"; fi
done

# nginx's configuration names its own port: a free one is found by trying.
mkdir -p "$TMPD/nginx/logs"
nginx_conf() {
	echo "worker_processes 1; pid $TMPD/nginx/nginx.pid; error_log $TMPD/nginx/logs/error.log warn;"
	echo "events { worker_connections 1024; }"
	echo "http { access_log off; client_body_temp_path $TMPD/nginx/body; proxy_temp_path $TMPD/nginx/proxy;"
	sed -e "s/@PORT1@/${R[0]}/; s/@PORT2@/${R[1]}/; s/@PORT3@/${R[2]}/; s/@PORT@/$1/" deploy/nginx/aeserve.conf
	echo "}"
}
nginx_up() { curl -sf -o /dev/null "http://127.0.0.1:$NP/livez" || ! kill -0 "$NGX" 2>/dev/null; }
for _ in $(seq 10); do
	NP=$((20000 + RANDOM % 12000))
	nginx_conf "$NP" > "$TMPD/nginx/nginx.conf"
	nginx -t -c "$TMPD/nginx/nginx.conf" -p "$TMPD/nginx" >/dev/null 2>&1 || bad "nginx -t: $(nginx -t -c "$TMPD/nginx/nginx.conf" -p "$TMPD/nginx" 2>&1)"
	nginx -c "$TMPD/nginx/nginx.conf" -p "$TMPD/nginx" -g 'daemon off;' 2>>"$TMPD/nginx/start.log" &
	NGX=$!
	PIDS+=("$NGX")
	wait_until 5 nginx_up
	kill -0 "$NGX" 2>/dev/null && break
done
check "nginx answers" curl -sf -o /dev/null "http://127.0.0.1:$NP/v1/models"

printf '3 200 POST /v1/encode image/png %s -\n1 200 POST /v1/anomaly image/png %s -\n' "$D0" "$D0" > "$TMPD/spec"
"$H" soak "$NP" "$SECS" 8 0 "$TMPD/spec" > "$TMPD/roll.txt" 2>&1 &
LOADER=$!
sleep 3
restarts=0
for p in "${R[@]}"; do
	stop_server "${RPID[$p]}"
	[ "$RC" = 0 ] || bad "replica $p exit $RC"
	start_replica "$TMPD/r$p" --port "$p" && restarts=$((restarts + 1))
	sleep 3
done
wait "$LOADER"
LRC=$?
total=$(grep '^total' "$TMPD/roll.txt")
echo "rolling restart: $restarts replicas restarted under load; $total"
check "rolling restart: all three restarted" test "$restarts" = 3
check "rolling restart: no request failed" test "$LRC" = 0
check "rolling restart: requests answered" test "$(sed -n 's/.* valid=\([0-9]*\).*/\1/p' <<<"$total")" -gt 100

# req/s: through nginx to three replicas, and from one replica alone
rate() { "$H" soak "$1" 8 16 0 "$TMPD/spec" | awk '/^total/ { for (i = 1; i <= NF; i++) if ($i ~ /^valid=/) { sub("valid=", "", $i); printf "%.0f", $i / 8 } }'; }
via=$(rate "$NP")
one=$(rate "${R[0]}")
echo "scale-out: ${via} req/s through nginx to 3 replicas, ${one} req/s from 1 replica (each --workers 1, on $(nproc) cores)"
check "req/s measured" test "${via:-0}" -gt 0 -a "${one:-0}" -gt 0
kill "$NGX"
done_tests
