#!/usr/bin/env bash
# ONNX export (docs/onnx.md): `aetrain export-onnx` for every shipped model
# and for models of every architecture and image-to-image kind, run in ONNX
# Runtime (npm's onnxruntime-node, all graph optimisations on) against our
# engine at two batch sizes; the Triton repository's config.pbtxt files
# checked against the ONNX files; the command's refusals. With Debian's
# python3-onnx, onnx.checker's full check and the metadata and weights read
# back; with python3-torch, tools/python/aeserve_model.py against our
# engine. Either missing is a counted skip.
set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=tests/lib.sh
. tests/lib.sh

AETRAIN=$BUILD/aetrain
REF=$BUILD/tests/tools/onnxref
NODE_CHECK=(node tests/onnx/check.mjs)
# Debian's Python, where its python3-onnx and python3-torch are
PY=${AE_PYTHON:-/usr/bin/python3}
# Images in [0, 1] to within 1e-5; codes to 1e-5 of their largest magnitude
# (tests/onnx/check.mjs says why).
TOL=1e-5
BATCHES=(1 17) # one image, and more than one chunk of the engine's (16)

# Random models: NAME PRESET C H W LATENT F1 F2 HIDDEN [TRANSFORM]
RANDOM_MODELS=(
	"conv conv 1 28 28 16 32 64 128"
	"conv-rgb conv 3 16 24 8 8 16 128"
	"dense dense 1 28 28 16 32 64 64"
	"dense-rgb dense 3 12 8 6 32 64 40"
	"gray conv 3 16 16 12 8 16 128 gray"
	"downscale conv 1 16 16 12 8 16 128 downscale:2"
	"mask dense 1 12 12 8 32 64 32 mask:4"
	"pairs conv 3 8 8 4 4 8 128 pairs"
)

compare=()   # check.mjs compare arguments
torch_args=() # check_torch_load.py arguments
onnx_args=() # check_onnx.py arguments
add_case() {
	local name=$1 model=$2 dirs=() seed=1
	mkdir -p "$TMPD/$name"
	if ! "$AETRAIN" export-onnx "$model" --out "$TMPD/$name/onnx" >/dev/null; then bad "export-onnx $model"; return; fi
	for n in "${BATCHES[@]}"; do
		mkdir -p "$TMPD/$name/b$n"
		"$REF" run "$model" "$TMPD/$name/b$n" "$n" $((seed++)) || bad "onnxref run $model"
		dirs+=("$TMPD/$name/b$n")
	done
	local refs
	refs=$(IFS=,; echo "${dirs[*]}")
	compare+=("$name" "$TMPD/$name/onnx" "$refs")
	torch_args+=("$model" "$refs")
	onnx_args+=("$model" "$TMPD/$name/onnx")
}

for m in models/*.safetensors models/photo/*.safetensors; do
	add_case "shipped-$(basename "$m" .safetensors)" "$m"
done
seed=11
for spec in "${RANDOM_MODELS[@]}"; do
	read -r name preset c h w latent f1 f2 hidden tf <<<"$spec"
	model=$TMPD/random-$name.safetensors
	# shellcheck disable=SC2086 # tf is one word or none
	"$REF" random "$model" "$preset" "$c" "$h" "$w" "$latent" "$f1" "$f2" "$hidden" $((seed++)) $tf ||
		bad "onnxref random $spec"
	add_case "random-$name" "$model"
done

# ONNX Runtime against our engine, every model and batch
if "${NODE_CHECK[@]}" compare "$TOL" "${compare[@]}" >"$TMPD/compare.txt"; then ok; else bad "ONNX Runtime differs from our engine"; fi
cat "$TMPD/compare.txt"
check "ONNX Runtime ran every model at both batch sizes" \
	test "$(grep -c "batch" "$TMPD/compare.txt")" -eq $((${#compare[@]} * ${#BATCHES[@]} / 3))
# The comparison can fail: one model's graphs against another's answers
# (same shapes, other weights) must be refused.
if "${NODE_CHECK[@]}" compare "$TOL" swapped "$TMPD/shipped-mnist/onnx" "$TMPD/shipped-fashion/b1" >/dev/null 2>&1; then
	bad "check.mjs compare accepted another model's answers"
else ok; fi

# A Triton model repository: three models, their configs against the files
repo=$TMPD/triton
"$AETRAIN" export-onnx models/mnist.safetensors --out "$repo" --triton --max-batch 8 >/dev/null || bad "export --triton"
"$AETRAIN" export-onnx "$TMPD/random-dense-rgb.safetensors" --out "$repo" --triton --name dense-rgb >/dev/null ||
	bad "export --triton --name"
check "the repository's layout" test -f "$repo/mnist/config.pbtxt" -a -f "$repo/mnist/1/model.onnx" \
	-a -f "$repo/mnist-encoder/1/model.onnx" -a -f "$repo/mnist-decoder/config.pbtxt" -a -f "$repo/dense-rgb-decoder/1/model.onnx"
if "${NODE_CHECK[@]}" triton "$repo" >"$TMPD/triton.txt"; then ok; else bad "Triton configs disagree with their ONNX files"; fi
cat "$TMPD/triton.txt"
check "six configs validated" test "$(grep -c "agree with" "$TMPD/triton.txt")" -eq 6
check "max_batch_size from --max-batch" grep -q "^max_batch_size: 8$" "$repo/mnist/config.pbtxt"
# ... and the validator refuses a config that disagrees with its file
sed -i 's/dims: \[ 1, 28, 28 \]/dims: [ 1, 28, 27 ]/' "$repo/mnist-encoder/config.pbtxt"
if "${NODE_CHECK[@]}" triton "$repo" >/dev/null 2>&1; then bad "a wrong config.pbtxt passed"; else ok; fi

# What the command refuses
expect_fail "no --out" "expected MODEL and --out DIR" "$AETRAIN" export-onnx models/mnist.safetensors
expect_fail "missing model" "No such file" "$AETRAIN" export-onnx "$TMPD/none.safetensors" --out "$TMPD/x"
head -c 5000 models/mnist.safetensors >"$TMPD/cut.safetensors"
expect_fail "a cut model file" "cut.safetensors" "$AETRAIN" export-onnx "$TMPD/cut.safetensors" --out "$TMPD/x"
expect_fail "a bad Triton name" "is not a model name" "$AETRAIN" export-onnx models/mnist.safetensors --out "$TMPD/x" \
	--triton --name ../up
expect_fail "a bad --max-batch" "--max-batch" "$AETRAIN" export-onnx models/mnist.safetensors --out "$TMPD/x" \
	--max-batch 0
check "--help" sh -c "'$AETRAIN' export-onnx --help | grep -q 'Triton model repository'"

# The reference checks, with Debian's Python packages when present
if $PY -c 'import onnx' 2>/dev/null; then
	if $PY tests/onnx/check_onnx.py "${onnx_args[@]}" >"$TMPD/onnx.txt"; then ok; else bad "onnx.checker"; fi
	cat "$TMPD/onnx.txt"
else
	skip "onnx.checker (python3-onnx is not installed)"
fi
if $PY -c 'import torch' 2>/dev/null; then
	if $PY tests/parity/check_torch_load.py "$TOL" "${torch_args[@]}" >"$TMPD/torch.txt"; then ok
	else bad "tools/python/aeserve_model.py differs from our engine"; fi
	cat "$TMPD/torch.txt"
else
	skip "tools/python/aeserve_model.py against our engine (python3-torch is not installed)"
fi

done_tests
