#!/usr/bin/env bash
# The throughput model of docs/distributed.md: images/s of N processes of T
# cores each (one process a node), from figures measured here (override any):
#
#   R1_28, R1_128   images/s one core trains: 764 at 28x28x1 (make mpi-bench,
#                   1 x 2, the least loaded turn), 48 at 128x128x3 (one
#                   thread, docs/performance.md)
#   S_28, S_128     gradient bytes a process sums per step (mpi_comm)
#   BUCK_28, BUCK_128  gradient buckets per step (64 Ki floats at least)
#   SMALL           the other sums per step: batch norm forward and backward
#                   (8), the loss (1)
#   O               software cost of one sum, us: 130 (TCP between two
#                   namespaces, unshaped: the fastest step at 28x28x1 less its
#                   gradients' median, over its 9 small sums)
#   E               share of the link's rate a sum reaches: 0.54 (9.0 MB in
#                   134 ms each way at 1 Gbit/s, against 72 ms)
#   ALPHA           one-way network latency, us (50)
#   T               cores a process (16); B: images a process per step (32),
#                   or G: images a step across all processes (then B = G / N)
#
# A step: B / (R1 T) s of arithmetic (linear in threads: optimistic), then
# the sums: the gradients as a bandwidth-optimal allreduce (each process
# sends and receives 2 (N-1)/N S bytes at E times the link's rate), every
# sum paying ceil(log2 N) latencies plus O. Nothing overlapped (the buckets
# do overlap the backward pass, so this is the sums' upper cost).
# Efficiency: images/s against N times one process's (which sums nothing).
#   bash bench/mpi_model.sh
set -euo pipefail
R1_28=${R1_28:-764} R1_128=${R1_128:-48}
S_28=${S_28:-713540} S_128=${S_128:-8954956}
BUCK_28=${BUCK_28:-3} BUCK_128=${BUCK_128:-4}
SMALL=${SMALL:-9} O=${O:-130} E=${E:-0.54} ALPHA=${ALPHA:-50} T=${T:-16} B=${B:-32} G=${G:-0}
for size in 28 128; do
	r1=R1_$size s=S_$size buck=BUCK_$size
	echo "## ${size}: T $T, R1 ${!r1} img/s a core, $([ "$G" -gt 0 ] && echo "$G a step" || echo "$B a process")"
	echo -e "N\t1 Gbit/s\t10 Gbit/s\t25 Gbit/s"
	for n in 1 2 4 8 16 32 64; do
		row=$n
		for g in 1 10 25; do
			row+=$'\t'$(awk -v n="$n" -v g="$g" -v r1="${!r1}" -v s="${!s}" -v bk="${!buck}" -v sm="$SMALL" \
				-v o="$O" -v e="$E" -v a="$ALPHA" -v t="$T" -v b0="$B" -v gl="$G" 'BEGIN {
				b = gl > 0 ? gl / n : b0
				comp = b / (r1 * t)
				rounds = 0; for (k = 1; k < n; k *= 2) rounds++
				bw = n > 1 ? 2 * (n - 1) / n * s * 8 / (e * g * 1e9) : 0
				lat = n > 1 ? (sm + bk) * (rounds * a + o) * 1e-6 : 0
				printf "%.0f (%.0f%%)", b * n / (comp + bw + lat), 100 * comp / (comp + bw + lat)
			}')
		done
		echo "$row"
	done
done
