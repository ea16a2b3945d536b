#!/usr/bin/env bash
# make image-test: the container image built and answering. A Debian 12
# base is made with mmdebstrap (no image registry is reachable here) and
# imported into podman; deploy/container/Dockerfile is built on it with
# `podman build --isolation=chroot`; then the image's own aeserve runs,
# with `podman run` where the machine allows it, else by chroot into the
# mounted image as the image's user, and answers /livez, the image's
# HEALTHCHECK command and an encode. Prints the image's size.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh

IMG=localhost/aeserve:test
BASE_IMG=localhost/debian12
BASE_TAR=${IMAGE_BASE_TAR:-$BUILD/debian12.tar}
for t in podman mmdebstrap; do command -v $t >/dev/null || { bad "$t is not installed"; done_tests; exit 1; }; done

if ! podman image exists "$BASE_IMG"; then
	if [ ! -s "$BASE_TAR" ]; then
		mkdir -p "$(dirname "$BASE_TAR")"
		if ! mmdebstrap --quiet --variant=apt --format=tar bookworm "$BASE_TAR.part"; then
			bad "mmdebstrap failed"; done_tests; exit 1
		fi
		mv "$BASE_TAR.part" "$BASE_TAR"
	fi
	podman import -q "$BASE_TAR" "$BASE_IMG" >/dev/null || { bad "podman import failed"; done_tests; exit 1; }
fi
t0=$(date +%s)
# docker format: OCI images cannot carry a HEALTHCHECK
if ! podman build -q --format docker --isolation=chroot --build-arg BASE="$BASE_IMG" \
	-f deploy/container/Dockerfile -t "$IMG" . > "$TMPD/build.log" 2>&1; then
	tail -20 "$TMPD/build.log"; bad "podman build failed"; done_tests; exit 1
fi
size=$(podman image inspect --format '{{.Size}}' "$IMG")
base_size=$(podman image inspect --format '{{.Size}}' "$BASE_IMG")
echo "image $IMG: $((size / 1000000)) MB (the Debian 12 base alone: $((base_size / 1000000)) MB), built in $(( $(date +%s) - t0 )) s"
cfg=$(podman image inspect --format '{{json .Config}}' "$IMG")
hc=$(podman image inspect --format '{{json .HealthCheck}}' "$IMG")
check "image runs as a non-root user" jqe '.User == "10001:10001"' <<<"$cfg"
check "image has a HEALTHCHECK on /livez" jqe '.Test | join(" ") | contains("/livez")' <<<"$hc"
check "image's entry point is aeserve" jqe '.Entrypoint == ["/usr/local/bin/aeserve"]' <<<"$cfg"

"$BUILD/aetrain" export tests/fixtures/digits --out "$TMPD/digits" --limit 1 >/dev/null
PORT=8080
if podman run -d --rm --name aeserve-test -p "$PORT:8080" "$IMG" > "$TMPD/run.log" 2>&1; then
	how="podman run"
	stop() { podman stop -t 20 aeserve-test >/dev/null; }
	in_image() { podman exec aeserve-test "$@"; }
else
	how="chroot into the image (podman run: $(head -c 120 "$TMPD/run.log"))"
	MNT=$(podman image mount "$IMG")
	mount -t proc proc "$MNT/proc" 2>/dev/null && MOUNTED=1
	# The image's own command line, as its user.
	mapfile -t CMD < <(jq -r '.Cmd[]' <<<"$cfg")
	chroot --userspec=10001:10001 "$MNT" /usr/local/bin/aeserve "${CMD[@]}" > "$TMPD/srv.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	stop() { kill -TERM "$SPID"; wait "$SPID"; echo "exit $?" >> "$TMPD/srv.log"; }
	in_image() { chroot --userspec=10001:10001 "$MNT" "$@"; }
fi
echo "running the image's aeserve by $how"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
expect_status "the image answers /livez" 200 "http://127.0.0.1:$PORT/livez"
check "the image encodes" jqe '.shape == [1,16]' <<<"$(curl -s -H 'Content-Type: image/png' --data-binary @"$TMPD/digits/00000.png" "http://127.0.0.1:$PORT/v1/models/mnist/encode")"
check "the image serves its baked models" jqe '[.models[].name] == ["fashion","mnist","mnist-denoise"]' <<<"$(curl -s "http://127.0.0.1:$PORT/v1/models")"
mapfile -t HC < <(jq -r '(.Test // [])[1:][]' <<<"$hc")
if [ "${#HC[@]}" -gt 0 ]; then
	check "the HEALTHCHECK command passes inside the image" in_image "${HC[@]}"
else
	bad "no HEALTHCHECK command to run"
fi
stop
grep -q "exit 0" "$TMPD/srv.log" 2>/dev/null || [ "$how" = "podman run" ]
check "the image's aeserve stops with exit 0" test $? = 0
[ "${MOUNTED:-0}" = 1 ] && umount "$MNT/proc"
[ -n "${MNT:-}" ] && podman image unmount "$IMG" >/dev/null
done_tests
