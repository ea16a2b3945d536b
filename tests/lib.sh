# Shared helpers for the shell integration tests: expectations that count
# passes and failures, and the closing "N passed, N failed" line.
PASS=0
FAIL=0
BUILD=${BUILD:-build}
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/ae-test.XXXXXX")
trap 'rm -rf "$TMPD"' EXIT

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

done_tests() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
