#!/usr/bin/env bash
# Unit tests and a short `aetrain train` under valgrind: any error or leak fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
# aetrain executes itself again when OpenBLAS picked kernels too old for the
# CPU (ae/blas.h), and valgrind lets an exec'd program run natively: a core
# named here is kept, so every line below stays under valgrind.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Prescott}
VG=(valgrind --error-exitcode=99 --leak-check=full "--errors-for-leak-kinds=definite,indirect" --quiet)
fail=0
for t in "$BUILD"/tests/test_*; do
	case "$t" in *.*) continue ;; esac
	echo "== valgrind $t"
	AE_TEST_QUICK=1 OPENBLAS_NUM_THREADS=1 "${VG[@]}" "$t" | tail -1 || fail=1
done
tmp=$(mktemp -d)
echo "== valgrind aetrain train"
OPENBLAS_NUM_THREADS=1 "${VG[@]}" "$BUILD"/aetrain train --data tests/fixtures/digits --limit 64 --epochs 1 \
	--filters 4,4 --threads 2 --quiet --out "$tmp/v.safetensors" || fail=1
OPENBLAS_NUM_THREADS=1 "${VG[@]}" "$BUILD"/aetrain eval "$tmp/v.safetensors" tests/fixtures/digits >/dev/null || fail=1
rm -rf "$tmp"
[ $fail -eq 0 ] && echo "valgrind: no errors, no leaks"
exit $fail
