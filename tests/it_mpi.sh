#!/usr/bin/env bash
# Training across processes (aetrain-mpi under mpirun, oversubscribed on
# this machine's cores): one step on 1, 2 and 4 processes gives the
# one-process gradients and weights within 1e-5, uneven and empty shares
# included; aetrain without MPI refuses to run as one of several; a
# process killed mid-run ends the job within seconds with a non-zero
# status, the checkpoint whole (SIGTERM to mpirun stops every process
# after the same step with a checkpoint), and --resume on the same number of
# processes ends on the uninterrupted model, on another number close to
# it; a process that hangs is ended by the watchdog. Skipped (and counted)
# where Open MPI is not installed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"
TM="$BUILD/aetrain-mpi"
STEP="$BUILD/tests/mpi_step"
D=tests/fixtures/digits

# ---- without MPI: aetrain started as one of several says what to run ----
expect_fail "aetrain under mpirun (Open MPI's variables)" "Run aetrain-mpi instead" \
	env OMPI_COMM_WORLD_SIZE=4 "$T" train --data $D --out "$TMPD/x.safetensors"
expect_fail "aetrain under srun (PMI's variables)" "one of 2 processes" \
	env PMI_SIZE=2 "$T" train --data $D --out "$TMPD/x.safetensors"
check "aetrain as one process of one still trains" env OMPI_COMM_WORLD_SIZE=1 "$T" train --data $D \
	--out "$TMPD/one.safetensors" --epochs 1 --filters 8,8 --latent 8 --threads 1 --quiet

if ! command -v mpirun >/dev/null || [ ! -x "$TM" ] || [ ! -x "$STEP" ]; then
	skip "aetrain-mpi: Open MPI is not installed (apt-get install openmpi-bin libopenmpi-dev), so make built none"
	done_tests
	exit
fi

# Open MPI as root, more processes than cores, shared memory only; under
# ASan, Open MPI's own allocations that it keeps until exit are not ours
# (tests/lsan-mpi.supp). Whole stacks (the slow unwinder): Open MPI's
# libraries have no frame pointers, and the components MPI_Finalize
# unloads have no name left, so a leak is known for Open MPI's only by
# the frames below them.
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl "self,vader")
if [ "$SANITIZED" = 1 ]; then
	MPIRUN+=(-x LSAN_OPTIONS="suppressions=$PWD/tests/lsan-mpi.supp:print_suppressions=0"
		-x ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0")
fi

# ---- parity: one step of the same batch on 1, 2 and 4 processes ----
"$STEP" "$TMPD/plain.bin" 16 >/dev/null
for n in 1 2 4; do
	check "one step on $n processes runs" "${MPIRUN[@]}" -np $n "$STEP" "$TMPD/s$n.bin" 16
	check "one step on $n processes: gradients and weights within 1e-5 of one process" \
		"$STEP" --compare "$TMPD/s$n.bin" "$TMPD/plain.bin"
done
check "one process over MPI is the plain step, bit for bit" cmp -s "$TMPD/s1.bin" "$TMPD/plain.bin"
# a batch of 6 on 4 processes (2, 1, 2, 1) and of 3 (one process holds none)
for b in 6 3; do
	"$STEP" "$TMPD/p$b.bin" $b >/dev/null
	check "batch $b on 4 processes" "${MPIRUN[@]}" -np 4 "$STEP" "$TMPD/u$b.bin" $b
	check "batch $b on 4 processes: within 1e-5" "$STEP" --compare "$TMPD/u$b.bin" "$TMPD/p$b.bin"
done
# a bucket after every layer, and one blocking sum after the backward pass
check "bucket per run" "${MPIRUN[@]}" -np 4 -x AE_DIST_BUCKET_KB=1 "$STEP" "$TMPD/k4.bin" 16
check "one blocking sum" "${MPIRUN[@]}" -np 4 -x AE_DIST_OVERLAP=0 "$STEP" "$TMPD/o4.bin" 16
check "buckets of any size sum the same bits" cmp -s "$TMPD/k4.bin" "$TMPD/s4.bin"
check "one blocking sum: within 1e-5" "$STEP" --compare "$TMPD/o4.bin" "$TMPD/plain.bin"

# ---- a run on 2 processes, killed, resumed ----
R=(--data "$D" --epochs 12 --seed 3 --noise gaussian:0:0.1 --filters "8,8" --latent 8 --threads 1 --quiet)
check "uninterrupted run on 2 processes" "${MPIRUN[@]}" -np 2 "$TM" train "${R[@]}" --out "$TMPD/full.safetensors"
check "rank 0 alone wrote the files" test -s "$TMPD/full.safetensors" -a -s "$TMPD/full.grid.png" \
	-a -s "$TMPD/full.losses.csv"
check "the checkpoint is removed at the end" test ! -e "$TMPD/full.ckpt"
full=$("$T" eval "$TMPD/full.safetensors" $D)
a=$(grep checksum <<<"$full")
check "the model file loads and evaluates" grep -qE '^mse: 0\.[0-9]+' <<<"$full"

# The pid of rank $2 among mpirun $1's children.
rank_pid() {
	local c
	for c in $(pgrep -P "$1"); do
		tr '\0' '\n' < "/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$c"; return; }
	done
}

# Starts the run on 2 processes (--checkpoint-every 5), waits for its first
# checkpoint, then signals rank 1 with $1; sets RC to mpirun's status and
# STOP_MS to the time it took to end after the signal.
run_and_signal() {
	rm -f "$TMPD/k.ckpt" "$TMPD/k.safetensors"
	"${MPIRUN[@]}" -np 2 "$TM" train "${R[@]}" --checkpoint-every 5 --dist-timeout 3 \
		--out "$TMPD/k.safetensors" >"$TMPD/k.log" 2>&1 & local mp=$!
	for _ in $(seq 600); do [ -e "$TMPD/k.ckpt" ] && break; sleep 0.05; done
	local victim
	victim=$(rank_pid $mp 1)
	local t0
	t0=$(date +%s%N)
	[ -n "$victim" ] && kill -"$1" "$victim"
	for _ in $(seq 600); do kill -0 $mp 2>/dev/null || break; sleep 0.05; done
	if kill -0 $mp 2>/dev/null; then kill -KILL $mp; wait $mp 2>/dev/null; RC=124
	else wait $mp; RC=$?; fi
	STOP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null
}

run_and_signal KILL
echo "kill -9 of rank 1: mpirun ended with status $RC in $STOP_MS ms"
check "kill -9 of a rank: the job fails (status $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
check "kill -9 of a rank: the job ends within 10 s ($STOP_MS ms)" test "$STOP_MS" -lt 10000
check "kill -9 of a rank: mpirun names the rank" grep -q "rank 1" "$TMPD/k.log"
check "kill -9 of a rank: the checkpoint is there" test -s "$TMPD/k.ckpt"
cp "$TMPD/k.ckpt" "$TMPD/k4.ckpt"
check "resume on 2 processes" "${MPIRUN[@]}" -np 2 "$TM" train --resume "$TMPD/k.ckpt" --quiet
c=$("$T" eval "$TMPD/k.safetensors" $D | grep checksum)
check "resumed on 2: the uninterrupted model ($a vs $c)" test "$a" = "$c"

# the same checkpoint resumed on 4 processes (the same batch of 32)
check "resume on 4 processes" "${MPIRUN[@]}" -np 4 "$TM" train --resume "$TMPD/k4.ckpt" --quiet
m_full=$(sed -n 's/^mse: //p' <<<"$full")
m_four=$("$T" eval "$TMPD/k.safetensors" $D | sed -n 's/^mse: //p')
echo "held-out MSE: uninterrupted on 2 processes $m_full, resumed on 4 $m_four"
check "resumed on 4: MSE within 1% of the uninterrupted run" \
	awk -v a="$m_full" -v b="$m_four" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.01 * a) }'

# ---- Ctrl-C or SIGTERM to mpirun: every process stops after the same step ----
rm -f "$TMPD/t.ckpt"
"${MPIRUN[@]}" -np 2 "$TM" train "${R[@]}" --epochs 400 --out "$TMPD/t.safetensors" 2>"$TMPD/t.err" & mp=$!
sleep 2
kill -TERM $mp
wait $mp
rc=$?
check "SIGTERM to mpirun: the run stops (status $rc)" test "$rc" -ne 0
check "SIGTERM to mpirun: rank 0 wrote the checkpoint and said how to resume" \
	grep -q 'interrupted: checkpoint written.*mpirun aetrain-mpi train --resume' "$TMPD/t.err"
check "SIGTERM to mpirun: the checkpoint is there" test -s "$TMPD/t.ckpt"

# ---- a rank that hangs (stopped): the watchdog ends the others ----
run_and_signal STOP
echo "SIGSTOP of rank 1: mpirun ended with status $RC in $STOP_MS ms"
check "a stopped rank: the job fails (status $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
check "a stopped rank: the job ends within 15 s ($STOP_MS ms)" test "$STOP_MS" -lt 15000
check "a stopped rank: the watchdog says why" grep -q "one has died or hangs" "$TMPD/k.log"
check "a stopped rank: the checkpoint is there" test -s "$TMPD/k.ckpt"

done_tests
