#!/usr/bin/env bash
# make bench: the engine beside PyTorch in one run, with ratios (this machine
# is shared and noisy: compare within a run, not across runs). Writes
# bench/results/latest.json and bench/results/latest.md.
#
# Covered so far: sgemm peak, inference images/s (encode, reconstruct; batch
# 1, 32, 256) and training images/s (batch 32). Not yet: the HTTP load part
# of issue 4 (wrk against aeserve, a bare libmicrohttpd responder and a
# FastAPI/PyTorch service).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
SECS=${SECS:-3}
mkdir -p bench/results
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	echo "bench: PyTorch is missing; install Debian's python3-torch to compare against it" >&2
	exit 1
fi
ours=$("$BUILD"/bench/bench_core "$THREADS" "$SECS")
ref=$(/usr/bin/python3 bench/torch_ref.py "$THREADS" "$SECS")
machine=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
jq -n --argjson ours "$ours" --argjson torch "$ref" --arg machine "$machine" --arg cores "$(nproc)" \
	--arg date "$(date -u +%FT%TZ)" '
	def r(k): ($ours[k] / $torch[k]);
	{date: $date, machine: $machine, cores: ($cores | tonumber), ours: $ours, torch: $torch,
	 ratios: ([ "encode_b1_img_s", "encode_b32_img_s", "encode_b256_img_s", "reconstruct_b1_img_s",
	            "reconstruct_b32_img_s", "reconstruct_b256_img_s", "train_b32_img_s" ]
	          | map({key: ., value: r(.)}) | from_entries),
	 fraction_of_sgemm_peak: {
	   reconstruct_b256: ($ours.reconstruct_b256_img_s * $ours.flops_reconstruct / 1e9 / $ours.sgemm_peak_gflops),
	   reconstruct_b32: ($ours.reconstruct_b32_img_s * $ours.flops_reconstruct / 1e9 / $ours.sgemm_peak_gflops),
	   train_b32: ($ours.train_b32_img_s * $ours.flops_train_step_per_image / 1e9 / $ours.sgemm_peak_gflops)}}' \
	> bench/results/latest.json
{
	jq -r '"# make bench, \(.date)\n\n\(.machine), \(.cores) cores; OpenBLAS sgemm peak \(.ours.sgemm_peak_gflops) GFLOP/s (1024^3); PyTorch \(.torch.torch_version)\n\n| case | ours img/s | PyTorch img/s | ours / PyTorch |\n|---|---|---|---|"' bench/results/latest.json
	jq -r '. as $d | .ratios | keys_unsorted[] | "| \(sub("_img_s"; "")) | \($d.ours[.] | floor) | \($d.torch[.] | floor) | \($d.ratios[.] * 100 | round / 100) |"' bench/results/latest.json
	jq -r '"\nFraction of the sgemm peak reached: reconstruct batch 256 \(.fraction_of_sgemm_peak.reconstruct_b256 * 1000 | round / 10)%, batch 32 \(.fraction_of_sgemm_peak.reconstruct_b32 * 1000 | round / 10)%, training \(.fraction_of_sgemm_peak.train_b32 * 1000 | round / 10)%."' bench/results/latest.json
} > bench/results/latest.md
cat bench/results/latest.md
