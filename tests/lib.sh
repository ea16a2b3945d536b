# shellcheck shell=bash
# Shared helpers for the shell integration tests: expectations that count
# passes and failures, and the closing "N passed, N failed" line.
PASS=0
FAIL=0
BUILD=${BUILD:-build}
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/ae-test.XXXXXX")
# Servers the script started; each is killed when the script ends.
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMPD"; }
trap cleanup EXIT
# Sanitized builds are slower and larger: timing and memory bounds are
# checked only on the release build (statuses and answers always).
SANITIZED=${SANITIZED:-0}

ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAILED: $*" >&2; }

# expect_fail "what" "message substring" cmd...: the command must exit non-zero
# and print the substring on stderr.
expect_fail() {
	local what=$1 msg=$2; shift 2
	local out rc
	out=$("$@" 2>&1 >/dev/null) && rc=0 || rc=$?
	if [ "$rc" -ne 0 ] && grep -qF -- "$msg" <<<"$out"; then ok; else bad "$what: rc=$rc, stderr: $out (wanted: $msg)"; fi
}

# check "what" cond...: the condition (a command) must succeed.
check() {
	local what=$1; shift
	if "$@"; then ok; else bad "$what"; fi
}

# start_server PORT LOG ARGS...: starts aeserve (its pid last in PIDS) and
# waits for /readyz.
start_server() {
	local port=$1 log=$2; shift 2
	"$BUILD/aeserve" --port "$port" "$@" > "$log" 2> "$log.err" &
	PIDS+=($!)
	for _ in $(seq 400); do
		curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
		kill -0 "${PIDS[-1]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "server on $port did not become ready: $(cat "$log.err")" >&2
	return 1
}

# stop_server PID [SIGNAL] [SECONDS]: signals the server (TERM) and waits
# for it to exit, at most SECONDS (15); sets RC to its exit status, or to
# 124 if it had to be killed, and STOP_MS to the time it took.
# shellcheck disable=SC2034 # RC and STOP_MS are read by the scripts that source this
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
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
