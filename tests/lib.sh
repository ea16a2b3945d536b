# shellcheck shell=bash disable=SC2034 # RC, STOP_MS, SRV_* are read by the scripts that source this
# The steps every shell integration test (tests/it_*.sh) shares: checks that
# count passes, failures and skips; aeserve started on a port the kernel
# chose; HTTP statuses and jq expectations; the closing summary line
# "N passed, N failed, N skipped" (exit status 1 on any failure).
#
# A new integration test is a new file tests/it_NAME.sh that sources this
# (`. tests/lib.sh`) from the repository root and ends with done_tests.
PASS=0
FAIL=0
SKIP=0
BUILD=${BUILD:-build}
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/ae-test.XXXXXX")
# The last request's body and headers (http_status, expect_status).
BODY=$TMPD/body
HEADERS=$TMPD/headers
# Servers the script started; each is killed when the script ends.
PIDS=()
# The last server start_server started.
SRV_PID=0 SRV_PORT=0 SRV_URL=http://127.0.0.1:0
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMPD"; }
trap cleanup EXIT
# Sanitized builds are slower and larger: timing and memory bounds are
# checked only on the release build (statuses and answers always).
SANITIZED=${SANITIZED:-0}

ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAILED: $*" >&2; }
# skip "what (why)": a check this run cannot make, counted and said.
skip() { SKIP=$((SKIP + 1)); echo "SKIPPED: $*" >&2; }

# check "what" cond...: the condition (a command) must succeed.
check() {
	local what=$1; shift
	if "$@"; then ok; else bad "$what"; fi
}

# release_only "what" cond...: a check of time or memory, which only the
# release build can make (a skip under SANITIZED=1).
release_only() {
	if [ "$SANITIZED" = 1 ]; then skip "$1 (a bound for the release build)"; else check "$@"; fi
}

# expect_fail "what" "message substring" cmd...: the command must exit non-zero
# and print the substring on stderr.
expect_fail() {
	local what=$1 msg=$2; shift 2
	local out rc
	out=$("$@" 2>&1 >/dev/null) && rc=0 || rc=$?
	if [ "$rc" -ne 0 ] && grep -qF -- "$msg" <<<"$out"; then ok; else bad "$what: rc=$rc, stderr: $out (wanted: $msg)"; fi
}

# jqe JQ-ARGS...: jq's verdict (-e: false, null or no output fail) alone.
jqe() { jq -e "$@" >/dev/null; }

# http_status CURL-ARGS...: prints the request's status (000: no answer,
# within a minute); its body is left in $BODY, its headers in $HEADERS.
http_status() { curl -s -m 60 -o "$BODY" -D "$HEADERS" -w '%{http_code}' "$@"; }

# expect_status "what" STATUS CURL-ARGS...: the request answers STATUS.
expect_status() {
	local what=$1 want=$2 got; shift 2
	got=$(http_status "$@")
	if [ "$got" = "$want" ]; then ok; else bad "$what: status $got, wanted $want: $(head -c 300 "$BODY" | tr -d '\0')"; fi
}

# expect_error "what" STATUS CODE CURL-ARGS...: the request answers STATUS
# with the JSON error {"error": {"code": CODE, ...}}.
expect_error() {
	local what=$1 want=$2 code=$3 got c; shift 3
	got=$(http_status "$@")
	c=$(jq -r '.error.code // empty' "$BODY" 2>/dev/null)
	if [ "$got" = "$want" ] && [ "$c" = "$code" ]; then ok
	else bad "$what: got $got '$c', wanted $want '$code': $(head -c 300 "$BODY" | tr -d '\0')"; fi
}

# wait_until SECONDS cond...: polls the condition every 50 ms until it holds
# (status 0) or SECONDS pass (status 1).
wait_until() {
	local n=$(($1 * 20)); shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.05; done
	"$@"
}

# png_size FILE: "WIDTHxHEIGHT" from the PNG's header.
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", $3 * 256 + $4, $7 * 256 + $8 }'; }

# start_server LOG ARGS...: starts aeserve on a port the kernel chooses
# (--port 0; a --port in ARGS overrides it), its access log in LOG and its
# messages in LOG.err, and waits until it serves (its "serving" line, which
# comes once every model is loaded and /readyz says 200). Sets SRV_PID
# (also the last of PIDS), SRV_PORT and SRV_URL (http://127.0.0.1:PORT).
# A port asked for that another socket still holds (a restart on the same
# port) is tried again for up to 5 s. Returns 1, saying why, if the server
# did not come up.
start_server() {
	local log=$1 tries=0; shift
	while :; do
		"$BUILD/aeserve" --port 0 "$@" > "$log" 2> "$log.err" &
		SRV_PID=$!
		PIDS+=("$SRV_PID")
		wait_until 20 server_up "$log.err" "$SRV_PID"
		if grep -q '^aeserve: serving' "$log.err"; then
			SRV_PORT=$(sed -n 's/^aeserve: listening on .* port \([0-9]*\)$/\1/p' "$log.err")
			SRV_URL=http://127.0.0.1:$SRV_PORT
			return 0
		fi
		if grep -q 'address already in use' "$log.err" && [ $((tries += 1)) -lt 50 ]; then sleep 0.1; continue; fi
		echo "the server did not come up: $(cat "$log.err")" >&2
		SRV_PORT=0 SRV_URL=http://127.0.0.1:0
		return 1
	done
}
# (the server has said it serves, or has exited)
server_up() { grep -q '^aeserve: serving' "$1" || ! kill -0 "$2" 2>/dev/null; }

# stop_server PID [SIGNAL] [SECONDS]: signals the server (TERM) and waits
# for it to exit, at most SECONDS (15); sets RC to its exit status, or to
# 124 if it had to be killed, and STOP_MS to the time it took.
stop_server() {
	local pid=$1 sig=${2:-TERM} secs=${3:-15} t0
	t0=$(date +%s%N)
	kill -"$sig" "$pid"
	for _ in $(seq $((secs * 20))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" 2>/dev/null; RC=124
	else wait "$pid"; RC=$?; fi
	STOP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

done_tests() {
	echo "$PASS passed, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ]
}
