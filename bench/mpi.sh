#!/usr/bin/env bash
# make mpi-bench: training across processes, measured (docs/distributed.md).
#
#   1. the bytes a process sums per step, for each shipped model and the
#      conv preset at 28x28x1, 64x64x3 and 128x128x3 (bench/mpi_comm);
#   2. on this machine, 1 process x 2 threads against 2 processes x 1
#      thread, training digits (28x28x1) and photo patches (128x128x3),
#      the two taking turns ROUNDS times: images/s and the time each
#      process waited inside MPI calls per step (AE_DIST_STATS); also
#      2 x 1 with the gradients summed in one blocking call after the
#      backward pass instead of in buckets during it (AE_DIST_OVERLAP=0);
#   3. over Open MPI's TCP transport between two network namespaces joined
#      by a veth pair, unshaped and shaped by tc (tbf) to 1, 10 and 25
#      Gbit/s: the time of one step's sums for 28x28x1 and 128x128x3 on 2
#      processes (bench/mpi_comm --time; root, ip and tc needed);
#   4. at 1 Gbit/s there, training digits on 2 x 1 with the gradients in
#      buckets and in one blocking sum, taking turns.
#
# Needs make data. Prints tab-separated tables; writes them to
# bench/results/mpi-DATE.txt. ROUNDS (default 5), STEPS_28 and STEPS_128
# (training steps per turn).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-5}
TM="$BUILD/aetrain-mpi"
COMM="$BUILD/bench/mpi_comm"
if [ ! -x "$TM" ] || [ ! -x "$COMM" ]; then
	echo "mpi-bench: needs Open MPI (make built no aetrain-mpi)" >&2
	exit 1
fi
[ -e data/mnist/train-images-idx3-ubyte ] || { echo "mpi-bench: needs make data" >&2; exit 1; }
WORK=$(mktemp -d)
NSA=aebenchA$$ NSB=aebenchB$$
cleanup() {
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
OUT=bench/results/mpi-$(date -u +%Y%m%dT%H%M%SZ).txt
exec > >(tee "$OUT")
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)

echo "## bytes a process sums per step"
"$COMM" models/*.safetensors models/photo/*.safetensors conv:28x28x1 conv:64x64x3 conv:128x128x3

# ---- 2. 1 x 2 against 2 x 1 ----
"$BUILD/aetrain" patches data/photos/*.png --size 128x128 --stride 32 --out "$WORK/patches" >/dev/null
# One turn: training for a fixed number of steps; prints images/s and the
# MPI wait per step of rank 0.
turn() { # name procs threads steps data-args...
	local name=$1 np=$2 th=$3 steps=$4
	shift 4
	# Not bound to cores: on this shared machine a rank pinned to a core
	# that other work holds cannot move to the free one (bound, 2 x 1
	# trained digits 3 times slower).
	local bind=(--bind-to none)
	local t0 t1 log="$WORK/turn.log"
	t0=$(date +%s%N)
	"${MPIRUN[@]}" -np "$np" "${bind[@]}" -x AE_DIST_STATS=1 -x AE_DIST_OVERLAP="${OVERLAP:-1}" \
		"$TM" train "$@" --threads "$th" --epochs 1 --batch 32 --limit $(((steps * 32 * 10 + 8) / 9)) \
		--val 0.1 --quiet --out "$WORK/m.safetensors" >/dev/null 2>"$log"
	t1=$(date +%s%N)
	local secs wait
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')
	wait=$(sed -n 's/.*rank 0 of .*: \([0-9.]*\) s waiting.*/\1/p' "$log")
	# images/s over the epoch's own seconds (losses.csv), without start-up and calibration
	local ips
	ips=$(awk -F, -v s="$steps" 'NR == 2 { printf "%.1f", s * 32 / $4 }' "$WORK/m.losses.csv")
	echo -e "$name\t$np x $th\t$ips\t$(awk -v w="$wait" -v s="$steps" 'BEGIN { printf "%.3f", w * 1000 / s }')\t$secs"
}
STEPS_28=${STEPS_28:-400}
STEPS_128=${STEPS_128:-40}
echo
echo "## turns: size, processes x threads, images/s, MPI wait ms/step (rank 0), wall s"
for _ in $(seq "$ROUNDS"); do
	for cfg in "1 2" "2 1"; do
		# shellcheck disable=SC2086
		turn 28x28x1 $cfg "$STEPS_28" --data data/mnist --filters 32,64
		# shellcheck disable=SC2086
		turn 128x128x3 $cfg "$STEPS_128" --data "$WORK/patches" --channels 3
	done
	OVERLAP=0 turn 28x28x1-blocking 2 1 "$STEPS_28" --data data/mnist --filters 32,64
	OVERLAP=0 turn 128x128x3-blocking 2 1 "$STEPS_128" --data "$WORK/patches" --channels 3
done

# ---- 3. TCP between two network namespaces ----
echo
if ! ip netns add "$NSA" 2>/dev/null; then
	echo "## TCP: skipped (needs root, ip and tc)"
	exit 0
fi
ip netns add "$NSB"
ip link add aeb0$$ type veth peer name aeb1$$
ip link set aeb0$$ netns "$NSA"
ip link set aeb1$$ netns "$NSB"
ip -n "$NSA" addr add 10.231.7.1/24 dev aeb0$$
ip -n "$NSB" addr add 10.231.7.2/24 dev aeb1$$
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set aeb0$$ up
ip -n "$NSB" link set aeb1$$ up
# mpirun's remote shell: host NAME is network namespace NAME, so that each
# namespace runs its own Open MPI daemon, as two machines would.
cat >"$WORK/ns-agent" <<'EOF'
#!/bin/sh
ns=$1
shift
exec ip netns exec "$ns" sh -c "$*"
EOF
chmod +x "$WORK/ns-agent"
# Both "machines" have all the cores: no binding, or both ranks would take core 0.
TCP=(ip netns exec "$NSA" mpirun --allow-run-as-root --oversubscribe --bind-to none
	--mca plm_rsh_agent "$WORK/ns-agent" --mca oob_tcp_if_include 10.231.7.0/24
	--mca btl "tcp,self" --mca btl_tcp_if_include 10.231.7.0/24 -H "$(hostname):1,$NSB:1" -np 2)
echo "## TCP between namespaces, 2 processes: one step's sums (us), median of 50"
for rate in none 1gbit 10gbit 25gbit; do
	for ns in "$NSA" "$NSB"; do
		dev=aeb0$$
		[ "$ns" = "$NSB" ] && dev=aeb1$$
		tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
		# tbf: the rate, with a bucket of 0.5 ms at that rate (at least 256 KB)
		if [ "$rate" != none ]; then
			bits=${rate%gbit}
			burst=$((bits * 1000000000 / 8 / 2000))
			[ "$burst" -lt 262144 ] && burst=262144
			tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
		fi
	done
	for model in conv:28x28x1 conv:128x128x3; do
		echo -en "$rate\t"
		"${TCP[@]}" "$PWD/$COMM" --time 50 "$model"
	done
done

# ---- 4. buckets against one blocking sum, training over TCP at 1 Gbit/s ----
echo
echo "## TCP at 1 Gbit/s, 2 x 1, 28x28x1, 150 steps: buckets (1) against one sum (0), in turns"
for _ in $(seq 4); do
	for ov in 1 0; do
		"${TCP[@]}" -x AE_DIST_OVERLAP=$ov -x AE_DIST_STATS=1 "$PWD/$TM" train --data "$PWD/data/mnist" \
			--filters 32,64 --threads 1 --epochs 1 --limit 5334 --quiet --out "$WORK/tcp.safetensors" \
			>/dev/null 2>"$WORK/tcp.err"
		w=$(sed -n 's/.*rank 0 of .*: \([0-9.]*\) s waiting.*/\1/p' "$WORK/tcp.err")
		awk -F, -v ov="$ov" -v w="$w" 'NR == 2 { printf "overlap %s\t%.1f img/s\t%.1f ms/step waiting\n", ov, 4800 / $4, w * 1000 / 150 }' \
			"$WORK/tcp.losses.csv"
	done
done
