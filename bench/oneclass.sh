#!/usr/bin/env bash
# make oneclass: the standard one-class evaluation. For each class of a data
# set, train a model on that class's training images alone, score the whole
# test split with every score, and take the AUROC of the class against the
# rest. Prints a Markdown table (per class, and the mean) for each data set
# and writes it to bench/results/oneclass-DATE.md.
#
#   DATASETS (default "fashion mnist", under data/), EPOCHS (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
EPOCHS=${EPOCHS:-10}
DATASETS=${DATASETS:-fashion mnist}
SCORES=(mse ssim max latent combined)
out=bench/results/oneclass-$(date -u +%Y%m%dT%H%M%SZ).md
work=$BUILD/oneclass
mkdir -p "$work" bench/results
{
	echo "# One-class AUROC ($(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
	echo
	echo "Conv preset, latent 16, $EPOCHS epochs, batch 32, seed 1; one model per class trained on that class's"
	echo "training images (10% held out for calibration); AUROC of the class against the rest of the test split."
} > "$out"
for ds in $DATASETS; do
	[ -d "data/$ds" ] || { echo "oneclass: data/$ds is missing (make data)" >&2; exit 1; }
	t0=$(date +%s)
	declare -A sum=()
	{
		echo
		echo "## $ds"
		echo
		printf '| class |'; printf ' %s |' "${SCORES[@]}"; echo
		printf '|---|'; printf -- '---|%.0s' "${SCORES[@]}"; echo
	} >> "$out"
	for k in 0 1 2 3 4 5 6 7 8 9; do
		m="$work/$ds-$k.safetensors"
		"$BUILD/aetrain" train --data "data/$ds" --classes "$k" --epochs "$EPOCHS" --quiet --out "$m" >/dev/null
		ev=$("$BUILD/aetrain" eval "$m" "data/$ds" --normal-class "$k")
		row="| $k |"
		for s in "${SCORES[@]}"; do
			v=$(sed -n "s/^auroc_normal_class_${k}_$s: //p" <<<"$ev")
			row="$row ${v:--} |"
			sum[$s]=$(awk -v a="${sum[$s]:-0}" -v b="${v:-0}" 'BEGIN { print a + b }')
		done
		echo "$row" >> "$out"
		echo "oneclass: $ds class $k: $row" >&2
	done
	row="| **mean** |"
	for s in "${SCORES[@]}"; do row="$row **$(awk -v a="${sum[$s]}" 'BEGIN { printf "%.4f", a / 10 }')** |"; done
	{ echo "$row"; echo; echo "$ds: $(( $(date +%s) - t0 )) s for ten models on $(nproc) cores."; } >> "$out"
	unset sum
done
cat "$out"
echo "oneclass: wrote $out" >&2
