#!/usr/bin/env bash
# aetrain as a user runs it: every option validated with a clear message,
# training writes the model, grid and CSV, eval and encode report and write
# what they promise, and an interrupted run resumed from its checkpoint ends
# with exactly the model an uninterrupted run gives.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
T="$BUILD/aetrain"
D=tests/fixtures/digits
# small filters keep the test fast; the recipe is the same
SMALL=(--filters "8,8" --latent 8 --threads 1)
FAST=("${SMALL[@]}" --quiet)

# ---- help and option validation ----
check "help lists commands" bash -c "'$T' --help | grep -q import-mnist-json"
for o in --data --out --arch --latent --filters --hidden --channels --epochs --batch --lr --loss --noise --val --seed --threads --limit --resume --checkpoint-every; do
	check "train --help documents $o" bash -c "'$T' train --help | grep -q -- '$o '"
done
expect_fail "no command" "usage: aetrain" "$T"
expect_fail "unknown command" "unknown command 'fly'" "$T" fly
expect_fail "missing data" "--data and --out are required" "$T" train --out "$TMPD/m.safetensors"
expect_fail "epochs 0" "--epochs: 0 is out of range" "$T" train --data $D --out "$TMPD/m.safetensors" --epochs 0
expect_fail "epochs text" "--epochs: 'ten' is not an integer" "$T" train --data $D --out "$TMPD/m.safetensors" --epochs ten
expect_fail "batch 0" "--batch: 0 is out of range" "$T" train --data $D --out "$TMPD/m.safetensors" --batch 0
expect_fail "lr" "--lr: 'fast' is not a number" "$T" train --data $D --out "$TMPD/m.safetensors" --lr fast
expect_fail "lr range" "--lr: 5 is out of range" "$T" train --data $D --out "$TMPD/m.safetensors" --lr 5
expect_fail "arch" "--arch: 'rnn' is neither conv nor dense" "$T" train --data $D --out "$TMPD/m.safetensors" --arch rnn
expect_fail "noise" "bad corruption 'gauss:1'" "$T" train --data $D --out "$TMPD/m.safetensors" --noise gauss:1
expect_fail "noise range" "probability must be in [0, 1]" "$T" train --data $D --out "$TMPD/m.safetensors" --noise saltpepper:2
expect_fail "channels" "--channels: must be 1 or 3" "$T" train --data $D --out "$TMPD/m.safetensors" --channels 2
expect_fail "threads past the engine's cap" "--threads: 65 is out of range [1, 64]" "$T" train --data $D --out "$TMPD/m.safetensors" --threads 65
expect_fail "filters" "--filters: 'x' is not F1,F2" "$T" train --data $D --out "$TMPD/m.safetensors" --filters x
expect_fail "val" "--val: 0.95 is out of range" "$T" train --data $D --out "$TMPD/m.safetensors" --val 0.95
expect_fail "loss" "--loss: 'l1' is neither mse nor bce" "$T" train --data $D --out "$TMPD/m.safetensors" --loss l1
expect_fail "unknown option" "unknown option or missing value: --colour" "$T" train --data $D --out "$TMPD/m.safetensors" --colour
expect_fail "missing data dir" "no/such/dir: No such file" "$T" train --data no/such/dir --out "$TMPD/m.safetensors"
expect_fail "resume not a file" "/dev/null: not a regular file" "$T" train --resume /dev/null
printf 'not a checkpoint' > "$TMPD/x.ckpt"
expect_fail "resume bad file" "x.ckpt" "$T" train --resume "$TMPD/x.ckpt"

# ---- training writes model, grid and losses ----
check "train" "$T" train --data $D --out "$TMPD/m.safetensors" --epochs 2 "${FAST[@]}"
check "model written" test -s "$TMPD/m.safetensors"
check "grid written" bash -c "head -c 8 '$TMPD/m.grid.png' | od -An -c | grep -q 'P   N   G'"
# 16 held-out images a row, 2 pixels apart: inputs over reconstructions
check "grid: two rows of 16 images ($(png_size "$TMPD/m.grid.png"))" test "$(png_size "$TMPD/m.grid.png")" = 478x58
check "csv has 2 epochs" test "$(wc -l < "$TMPD/m.losses.csv")" -eq 3
tmps=("$TMPD"/*tmp*)
check "no temporary files left" test ! -e "${tmps[0]}"

# ---- eval ----
out=$("$T" eval "$TMPD/m.safetensors" $D --normal-class 1 2>&1)
check "eval mse" grep -qE '^mse: 0\.[0-9]+' <<<"$out"
check "eval psnr" grep -qE '^psnr_db: [0-9]+' <<<"$out"
check "eval per class" grep -q '^class 9: mse' <<<"$out"
check "eval auroc" grep -qE '^auroc_normal_class_1: 0\.[0-9]+' <<<"$out"
expect_fail "eval model missing" "nope.safetensors: cannot open" "$T" eval "$TMPD/nope.safetensors" $D
expect_fail "eval normal class absent" "needs both that class and others" "$T" eval "$TMPD/m.safetensors" $D --normal-class 42
mkdir -p "$TMPD/png9"
cp tests/fixtures/pngsuite/s09n3p02.png "$TMPD/png9/a.png"
expect_fail "eval wrong image size" "images are 9x9 (height x width), the model takes 28x28" "$T" eval "$TMPD/m.safetensors" "$TMPD/png9"

# ---- denoising model ----
check "train denoise" "$T" train --data $D --out "$TMPD/d.safetensors" --epochs 1 --noise gaussian:0.5:0.5 "${FAST[@]}"
out=$("$T" eval "$TMPD/d.safetensors" $D)
check "denoise eval corrupts inputs" grep -q 'corruption: gaussian:0.5:0.5' <<<"$out"
check "denoise eval reports noisy baseline" grep -q 'mse_noisy_input:' <<<"$out"
check "denoise grid: three rows, the corrupted inputs between ($(png_size "$TMPD/d.grid.png"))" \
	test "$(png_size "$TMPD/d.grid.png")" = 478x88

# ---- encode ----
check "encode npy" "$T" encode "$TMPD/m.safetensors" $D --out "$TMPD/z.npy"
# 100 codes of 8 float32 + a 128-byte header
check "npy size" test "$(stat -c %s "$TMPD/z.npy")" -eq $((128 + 100 * 8 * 4))
check "npy magic" bash -c "head -c 6 '$TMPD/z.npy' | tail -c 5 | grep -q NUMPY"
check "encode csv" "$T" encode "$TMPD/m.safetensors" $D --out "$TMPD/z.csv"
check "csv rows" test "$(wc -l < "$TMPD/z.csv")" -eq 101
check "csv header" bash -c "head -1 '$TMPD/z.csv' | grep -q '^label,z0,z1'"
expect_fail "encode needs out" "--out FILE.npy or --out FILE.csv" "$T" encode "$TMPD/m.safetensors" $D
expect_fail "encode bad ext" "--out FILE.npy or --out FILE.csv" "$T" encode "$TMPD/m.safetensors" $D --out "$TMPD/z.txt"

# ---- interrupt and resume gives the uninterrupted model ----
R=(--data "$D" --epochs 40 --seed 3 --noise saltpepper:0.1 "${SMALL[@]}")
t0=$(date +%s%N)
check "uninterrupted run" "$T" train "${R[@]}" --quiet --out "$TMPD/full.safetensors"
full_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# SIGTERM once the first epoch is done (its line on stderr; --quiet would
# hide it), 39 before the end; should the run end first even so, it is run
# again, and a run never interrupted fails the test.
epoch_done() { grep -q '^epoch 1/40' "$TMPD/cut.err" || ! kill -0 "$pid" 2>/dev/null; }
rc=0
for _ in 1 2 3; do
	rm -f "$TMPD/cut.safetensors" "$TMPD/cut.ckpt"
	"$T" train "${R[@]}" --out "$TMPD/cut.safetensors" 2>"$TMPD/cut.err" & pid=$!
	wait_until 30 epoch_done
	kill -TERM $pid 2>/dev/null
	wait $pid; rc=$?
	[ $rc -eq 130 ] && break
	echo "training ended (rc $rc) before SIGTERM; again" >&2
done
check "SIGTERM mid-run: exit status 130 (got $rc)" test "$rc" -eq 130
check "checkpoint written, and said so" bash -c "test -s '$TMPD/cut.ckpt' && grep -q 'interrupted: checkpoint written' '$TMPD/cut.err'"
check "no model written by the interrupted run" test ! -e "$TMPD/cut.safetensors"
check "resume" "$T" train --resume "$TMPD/cut.ckpt" --quiet
check "checkpoint removed after finishing" test ! -e "$TMPD/cut.ckpt"
a=$("$T" eval "$TMPD/full.safetensors" $D | grep checksum)
b=$("$T" eval "$TMPD/cut.safetensors" $D | grep checksum)
check "resumed model equals uninterrupted ($a vs $b)" test "$a" = "$b"

# ---- kill -9 at random moments: --checkpoint-every, then --resume, ends on the uninterrupted model ----
# The moment is drawn within the uninterrupted run's time; a run that ended
# before it (exit status 0, not SIGKILL's 137) is drawn again.
K=("${R[@]}" --quiet --checkpoint-every 5)
for k in 1 2 3; do
	for _ in 1 2 3; do
		rm -f "$TMPD/k.ckpt" "$TMPD/k.safetensors"
		"$T" train "${K[@]}" --out "$TMPD/k.safetensors" & pid=$!
		sleep "$(awk -v ms=$((RANDOM % (full_ms > 0 ? full_ms : 1))) 'BEGIN { printf "%.3f", ms / 1000 }')"
		kill -KILL $pid; wait $pid 2>/dev/null; rc=$?
		[ $rc -eq 137 ] && break
	done
	check "kill -9 run $k: killed mid-run (rc $rc)" test "$rc" -eq 137
	if [ -e "$TMPD/k.ckpt" ]; then
		how="resumed from the last checkpoint"
		check "kill -9 run $k: resume" "$T" train --resume "$TMPD/k.ckpt" --quiet
	else
		how="no checkpoint yet: run again"
		check "kill -9 run $k: run again" "$T" train "${K[@]}" --out "$TMPD/k.safetensors"
	fi
	c=$("$T" eval "$TMPD/k.safetensors" $D | grep checksum)
	echo "kill -9 run $k: $how: $c"
	check "kill -9 run $k: the model equals the uninterrupted one ($a vs $c)" test "$a" = "$c"
done

# ---- a full disk (a file-size limit): the previous files are left whole and the failure named ----
cp "$TMPD/full.safetensors" "$TMPD/disk.safetensors"
cp "$TMPD/full.safetensors" "$TMPD/disk.ckpt"
out=$( (ulimit -f 8; "$T" train --data $D --epochs 1 --seed 9 "${FAST[@]}" --checkpoint-every 2 --out "$TMPD/disk.safetensors") 2>&1 ); rc=$?
check "disk full: training fails (rc $rc)" test "$rc" -ne 0
check "disk full: the checkpoint failure is named" grep -q 'cannot write checkpoint: .*write failed' <<<"$out"
check "disk full: the model failure is named" grep -q 'disk.safetensors: write failed' <<<"$out"
check "disk full: the previous model is whole" cmp -s "$TMPD/full.safetensors" "$TMPD/disk.safetensors"
check "disk full: the previous checkpoint is whole" cmp -s "$TMPD/full.safetensors" "$TMPD/disk.ckpt"
check "disk full: no temporary files left" bash -c "! ls '$TMPD'/disk.*tmp* >/dev/null 2>&1"

# ---- import-mnist-json ----
mkdir -p "$TMPD/json"
for d in 0 1 2 3 4 5 6 7 8 9; do
	python_free=$(printf '0,%.0s' $(seq 783)); echo "{\"data\": [${python_free}1]}" > "$TMPD/json/$d.json"
done
check "import json" "$T" import-mnist-json "$TMPD/json" "$TMPD/jout"
check "import json wrote IDX" test "$(stat -c %s "$TMPD/jout/train-images-idx3-ubyte")" -eq $((16 + 8 * 784))
echo '{"data": [0.5, 2]}' > "$TMPD/json/3.json"
expect_fail "import bad json" "3.json: \"data\" must be an array of 784 values per image" "$T" import-mnist-json "$TMPD/json" "$TMPD/jout"
echo '{"data": [' > "$TMPD/json/3.json"
expect_fail "import broken json" "3.json:" "$T" import-mnist-json "$TMPD/json" "$TMPD/jout"

done_tests
