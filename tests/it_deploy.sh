#!/usr/bin/env bash
# deploy/ checked with the real tools: the systemd unit by
# `systemd-analyze verify` (against a DESTDIR install, so the paths it
# names exist), and the Kubernetes manifests against the Kubernetes API's
# schemas (tests/manifests/check.mjs), both also shown to fail on a broken
# copy.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh

# ---- systemd ----
if command -v systemd-analyze >/dev/null; then
	make -s install DESTDIR="$TMPD/root" BUILD="$BUILD" >/dev/null
	R="$TMPD/root"
	sed -e "s|/usr/local/|$R/usr/local/|g" -e "s|/bin/kill|$(command -v kill)|" \
		deploy/systemd/aeserve.service > "$TMPD/aeserve.service"
	out=$(MANPATH="$R/usr/local/share/man" systemd-analyze verify "$TMPD/aeserve.service" 2>&1)
	check "systemd-analyze verify is clean: $out" test -z "$out"
	# shellcheck disable=SC2016 # $MAINPID is the unit's, written as it is
	for k in DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict 'ExecReload=/bin/kill -HUP $MAINPID' \
		'ReadOnlyPaths=/usr/local/share/aeserve/models' 'CapabilityBoundingSet='; do
		check "unit has $k" grep -qxF "$k" deploy/systemd/aeserve.service
	done
	stop=$(sed -n 's/^TimeoutStopSec=//p' deploy/systemd/aeserve.service)
	drain=$(grep -o -- '--drain-delay [0-9]*' deploy/systemd/aeserve.service | awk '{print $2}')
	dto=$(grep -o -- '--drain-timeout [0-9]*' deploy/systemd/aeserve.service | awk '{print $2}')
	check "TimeoutStopSec $stop > drain $drain + $dto" test "$stop" -gt $((drain + dto))
	sed 's|^ExecStart=|ExecStart=bin/aeserve |' "$TMPD/aeserve.service" > "$TMPD/broken.service"
	check "systemd-analyze fails a broken unit" \
		bash -c "! MANPATH='$R/usr/local/share/man' systemd-analyze verify '$TMPD/broken.service' 2>/dev/null"
else
	bad "systemd-analyze is not installed"
fi

# ---- Kubernetes ----
V=tests/manifests
if [ ! -d "$V/node_modules" ]; then (cd "$V" && npm ci --silent --no-audit --no-fund); fi
check "manifests valid and fit for aeserve" node "$V/check.mjs" deploy/k8s/*.yaml
sed 's/replicas: 3/replicas: three/' deploy/k8s/deployment.yaml > "$TMPD/bad1.yaml"
check "a schema error is caught" bash -c "! node $V/check.mjs $TMPD/bad1.yaml 2>/dev/null"
sed 's/terminationGracePeriodSeconds: 30/terminationGracePeriodSeconds: 12/' deploy/k8s/deployment.yaml > "$TMPD/bad2.yaml"
check "a grace period shorter than the drain is caught" bash -c "! node $V/check.mjs $TMPD/bad2.yaml 2>/dev/null"
sed 's|secretName: aeserve-api-keys|name: x|; s|secret:|configMap:|' deploy/k8s/deployment.yaml > "$TMPD/bad3.yaml"
check "a key not from a Secret is caught" bash -c "! node $V/check.mjs $TMPD/bad3.yaml 2>/dev/null"

# ---- training: the MPI Operator's MPIJob, the Slurm batch script ----
J=deploy/mpijob/aetrain.yaml
check "MPIJob valid and fit for aetrain-mpi" node "$V/check_mpijob.mjs" $J
sed 's/cleanPodPolicy: Running/cleanPodPolicy: Sometimes/' $J > "$TMPD/mj1.yaml"
check "an MPIJob enumeration error is caught" bash -c "! node $V/check_mpijob.mjs $TMPD/mj1.yaml 2>/dev/null"
sed 's/slotsPerWorker: 2/slotPerWorker: 2/' $J > "$TMPD/mj2.yaml"
check "an unknown MPIJob field is caught" bash -c "! node $V/check_mpijob.mjs $TMPD/mj2.yaml 2>/dev/null"
sed 's/      replicas: 4/      replicas: 3/' $J > "$TMPD/mj3.yaml"
check "mpirun -np against the workers' slots is checked" bash -c "! node $V/check_mpijob.mjs $TMPD/mj3.yaml 2>/dev/null"
sed 's/tcpSocket: { port: 2222 }/tcpSocket: { port: [2222] }/' $J > "$TMPD/mj4.yaml"
check "a pod template schema error is caught" bash -c "! node $V/check_mpijob.mjs $TMPD/mj4.yaml 2>/dev/null"
check "the Slurm script parses" bash -n deploy/slurm/aetrain.sbatch
check "the Slurm script runs aetrain-mpi under srun, resuming" \
	grep -qE 'srun .*--kill-on-bad-exit=1 .*train' deploy/slurm/aetrain.sbatch

done_tests
