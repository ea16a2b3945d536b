#!/usr/bin/env bash
# make mutation: every integration test run against a copy of the tree with
# one deliberate fault in what it checks (a wrong status, a corrupted
# output, a server, trainer, build or deployment change), each of which the
# test must fail. A test that passes with its fault in place cannot see
# that fault; a fault whose line is no longer in its file is "stale" (the
# code moved: find the line again). Either makes the run fail.
#
# The copy holds the tracked and untracked (not ignored) files as they are
# in the work tree, the build directory (so each fault rebuilds one object)
# and links to the tests' node_modules. Prints the table in Markdown, also
# kept in $BUILD/mutation.md. Takes about as long as the integration tests.
#
#   bash tests/mutation.sh [TEST...]     (TEST: it_aeserve ...; default all)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
SRC=$PWD
BUILD=${BUILD:-build}
W=$(mktemp -d "${TMPDIR:-/tmp}/ae-mutation.XXXXXX")
trap 'rm -rf "$W"' EXIT

git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$W" || exit 1
for d in tests/openapi tests/manifests tests/browser; do
	[ -d "$d/node_modules" ] && ln -s "$SRC/$d/node_modules" "$W/$d/node_modules"
done
[ -d "$BUILD" ] && cp -a "$BUILD" "$W/build"
make -s -j2 -C "$W" BUILD=build it-deps >/dev/null || { echo "mutation: the copy does not build" >&2; exit 1; }

ROWS=()
survived=0

# mutate TEST FILE SED-EXPRESSION "the fault": applies the fault to FILE in
# the copy, rebuilds, runs tests/TEST.sh, and restores the file.
mutate() {
	local test=$1 file=$2 expr=$3 fault=$4 result rc t0 secs
	if [ -n "$ONLY" ] && ! grep -qw -- "$test" <<<"$ONLY"; then return; fi
	cp -p "$W/$file" "$W/$file.orig"
	sed -i -e "$expr" "$W/$file"
	if cmp -s "$W/$file" "$W/$file.orig"; then
		result="STALE: the line is not in $file"
		survived=$((survived + 1))
	elif ! make -s -j2 -C "$W" BUILD=build it-deps > "$W/make.log" 2>&1; then
		result="the faulty tree does not build: $(tail -1 "$W/make.log")"
	else
		t0=$(date +%s)
		(cd "$W" && BUILD=build timeout 900 bash "tests/$test.sh") > "$W/test.log" 2>&1
		rc=$? secs=$(($(date +%s) - t0))
		if [ "$rc" -ne 0 ]; then
			result="failed ($(grep -E '^[0-9]+ passed, [0-9]+ failed' "$W/test.log" | tail -1 | cut -d, -f2 | xargs),"
			result+=" ${secs} s): $(grep -m1 '^FAILED: ' "$W/test.log" | cut -c9-110 | tr '|' '/')"
		else
			result="PASSED: the fault went unnoticed"
			survived=$((survived + 1))
		fi
	fi
	mv "$W/$file.orig" "$W/$file"
	touch "$W/$file"
	ROWS+=("| $test | $fault | \`$file\`: \`$(tr '|' '/' <<<"$expr")\` | $result |")
	echo "$test: $fault: $result" >&2
}
ONLY="$*"

# The faults, one or more per test.
mutate it_access server/keys.c 's/match |= diff == 0;/match |= diff == 0 || len >= 20;/' \
	"any 20 characters of a key are taken for it"
mutate it_aeserve server/inputs.c 's/dst\[i\] = 1.0f - dst\[i\];/dst[i] = dst[i];/' \
	"?invert=1 ignored (the image is not inverted)"
mutate it_aetrain trainer/report.c 's/? 3 : 2;/? 2 : 2;/' \
	"a denoiser's grid loses its row of corrupted inputs"
mutate it_aetrain trainer/train.c 's/rc = 130;/rc = 0;/' \
	"SIGTERM mid-run exits 0, as if training had ended"
mutate it_anomaly server/drift.c 's/d->n_over += o;/d->n_over += 0;/' \
	"the drift gauge never counts an image over p99"
mutate it_codes core/codes.c 's/float v = rintf(z\[i\]/float v = truncf(z[i]/' \
	"int8 codes truncated instead of rounded"
mutate it_deploy deploy/systemd/aeserve.service '/^NoNewPrivileges=yes$/d' \
	"the systemd unit loses NoNewPrivileges"
mutate it_hostile server/http.c 's/srv_reply_error(c, 414, "uri_too_long"/srv_reply_error(c, 400, "uri_too_long"/' \
	"a 20 kB URL answered 400 instead of 414"
mutate it_install Makefile 's|install -m 644 include/ae/\*.h |install -m 644 include/ae/*.h core/dconv.h |' \
	"make install ships an internal header"
# shellcheck disable=SC2016 # make's $(BUILD), not the shell's
mutate it_install Makefile 's|install -m 644 $(BUILD)/ae.pc |install -m 644 $(BUILD)/ae.pc.none |' \
	"make install fails (a file it installs is missing)"
mutate it_playground server/playground.c "s/default-src 'none'/default-src */" \
	"the page's Content-Security-Policy allows any origin"
mutate it_reload server/conn.c 's/sin_addr.s_addr) >> 24) == 127/sin_addr.s_addr) >> 24) != 0/' \
	"every IPv4 client counts as loopback (repository calls open to the network)"
mutate it_scaleout deploy/nginx/aeserve.conf '/proxy_next_upstream /d' \
	"nginx no longer retries a request a stopping replica refused"
mutate it_sizes trainer/cli.c 's/spec->h = ds->h, spec->w = ds->w;/spec->h = ds->w, spec->w = ds->h;/' \
	"a new model takes its height and width swapped from the data"
mutate it_shapes server/inference.c 's/const ae_shape out = ae_plan_out_shape(r->job.plan, r->job.op);/const ae_shape out = ae_plan_in_shape(r->job.plan, r->job.op);/' \
	"/v1 answers written with the operation's input shape instead of its output's"
mutate it_shapes server/v2.c 's/return out->scalar ? 1 : ae_plan_out_size(p, out->engine);/return out->scalar ? 1 : ae_plan_in_size(p, out->engine);/' \
	"V2 outputs sized by the operation's input"
mutate it_v2 server/v2.c 's/v\[i\] > o->threshold ? "true"/v[i] < 0 * o->threshold ? "true"/' \
	"V2's anomaly output always false in JSON"

{
	echo "| test | fault | how injected | result |"
	echo "|---|---|---|---|"
	printf '%s\n' "${ROWS[@]}"
} | tee "$BUILD/mutation.md"
echo "${#ROWS[@]} faults, $((${#ROWS[@]} - survived)) caught, $survived not caught or stale"
[ "$survived" -eq 0 ]
