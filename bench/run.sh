#!/usr/bin/env bash
# make bench: the engine and the service beside their references in one run,
# as ratios (this machine is shared and noisy: compare within a run, not
# across runs). Writes bench/results/latest.json and latest.md, and a dated
# copy of both.
#
#   1. bench_core (ours) and torch_ref.py (PyTorch): sgemm peak, inference
#      images/s (encode, reconstruct; batch 1, 32, 256), training images/s,
#      each the median of 9 slices of its window on both sides, the sides
#      taking turns ROUNDS times;
#   2. http.sh: wrk against a bare libmicrohttpd responder, aeserve and a
#      FastAPI/PyTorch service; aeserve's readiness time and peak RSS;
#   3. engines.sh: the shipped digit model in our engine at each precision
#      the CPU runs, in ONNX Runtime and in PyTorch, encode and reconstruct
#      at batch 1, 32, 256, in turns seconds apart;
#   4. latency.sh: aeserve's latency at a fixed arrival rate, 50% and 80% of
#      its wrk maximum, by an open-loop generator (bench/openloop.c);
#   5. service.sh: aeserve's /v1/reconstruct (PNG in and out) under wrk
#      against the engine's batch-32 images/s, in turns seconds apart;
#   6. sizes.sh: the preset at 28x28x1, 64x64x3 and 128x128x3, training and
#      reconstruct images/s at batch 32 and peak RSS, both sides, in short
#      turns taken seconds apart by two processes kept warm (TURNS, 9).
#
# SECS (per engine case, default 3), WRK_SECS (default 20), THREADS (nproc),
# ROUNDS (turns each side takes in 1, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
SECS=${SECS:-3}
ROUNDS=${ROUNDS:-3}
mkdir -p bench/results
# Both sides run on the OpenBLAS kernels our programs choose (ae/blas.h:
# they replace a core OpenBLAS picked too old for the CPU); PyTorch's
# matrix products go through the same library.
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$("$BUILD"/aetrain --version | sed -n 's/.*OpenBLAS core \(.*\))$/\1/p')}
export OPENBLAS_CORETYPE
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	echo "bench: PyTorch is missing; install Debian's python3-torch to compare against it" >&2
	exit 1
fi
# The two sides take turns, ROUNDS times (sizes.sh takes shorter ones): the host's
# load moves over minutes, so each side's figure is its median over the
# rounds and each ratio the median of the rounds' ratios.
runs=()
for r in $(seq "$ROUNDS"); do
	echo "bench: engine, round $r of $ROUNDS (ours, then PyTorch)" >&2
	o=$("$BUILD"/bench/bench_core "$THREADS" "$SECS")
	t=$(/usr/bin/python3 bench/torch_ref.py "$THREADS" "$SECS")
	runs+=("$(jq -n -c --argjson o "$o" --argjson t "$t" '{ours: $o, torch: $t}')")
done
engine=$(printf '%s\n' "${runs[@]}" | jq -s -c .)
# shellcheck disable=SC2016 # a jq program: its $ are jq's
median_side='def median: sort | .[(length - 1) / 2 | floor];
	. as $r | $r[0][$side] + ($r[0][$side] | to_entries | map(select(.value | type == "number") | .key)
	| map({key: ., value: ([$r[][$side][.]] | median)}) | from_entries)'
ours=$(jq -c --arg side ours "$median_side" <<<"$engine")
ref=$(jq -c --arg side torch "$median_side" <<<"$engine")
http=$(BUILD=$BUILD bash bench/http.sh)
engines=$(BUILD=$BUILD THREADS=$THREADS bash bench/engines.sh)
latency=$(BUILD=$BUILD bash bench/latency.sh)
service=$(BUILD=$BUILD bash bench/service.sh)
sizes=$(BUILD=$BUILD THREADS=$THREADS SECS=$SECS bash bench/sizes.sh)
# The vector units decide which kernels run (and how fast OpenBLAS is).
isa=$(grep -o -w -e avx512f -e avx2 -e fma /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')
machine="$(lscpu | sed -n 's/^Model name: *//p' | head -1) (${isa:-no AVX2}), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo '?') (core $OPENBLAS_CORETYPE), libmicrohttpd $(dpkg-query -W -f='${Version}' libmicrohttpd12 2>/dev/null || echo '?')"
out=bench/results/latest.json
jq -n --argjson ours "$ours" --argjson torch "$ref" --argjson engine "$engine" --argjson http "$http" --argjson sizes "$sizes" --argjson engines "$engines" --argjson latency "$latency" --argjson service "$service" --arg machine "$machine" \
	--arg cores "$(nproc)" --arg date "$(date -u +%FT%TZ)" --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" '
	def median: sort | .[(length - 1) / 2 | floor];
	def r($k): ([$engine[] | .ours[$k] / .torch[$k]] | median);
	def peak(k; f): ($ours[k] * f / 1e9 / $ours.sgemm_peak_gflops);
	{date: $date, commit: $commit, machine: $machine, cores: ($cores | tonumber), ours: $ours, torch: $torch,
	 engine_rounds: $engine, http: $http, engines: $engines, latency: $latency, service: $service,
	 sizes: $sizes,
	 ratios: ([ "encode_b1_img_s", "encode_b32_img_s", "encode_b256_img_s", "reconstruct_b1_img_s",
	            "reconstruct_b32_img_s", "reconstruct_b256_img_s", "train_b32_img_s" ]
	          | map({key: ., value: r(.)}) | from_entries),
	 fraction_of_sgemm_peak: {
	   reconstruct_b256: peak("reconstruct_b256_img_s"; $ours.flops_reconstruct),
	   reconstruct_b32: peak("reconstruct_b32_img_s"; $ours.flops_reconstruct),
	   train_b32: peak("train_b32_img_s"; $ours.flops_train_step_per_image)},
	 http_ratios: {
	   encode_vs_bare: ($http.aeserve.encode.req_s / $http.bare_mhd.req_s),
	   reconstruct_png_vs_bare: ($http.aeserve.reconstruct_png.req_s / $http.bare_mhd.req_s),
	   encode_vs_fastapi: (if $http.fastapi.encode then $http.aeserve.encode.req_s / $http.fastapi.encode.req_s else null end),
	   reconstruct_png_vs_fastapi: (if $http.fastapi.reconstruct_png then $http.aeserve.reconstruct_png.req_s / $http.fastapi.reconstruct_png.req_s else null end)}}' \
	> "$out"
md=bench/results/latest.md
jq -r '
	def f(x): if x == null then "n/a" else (x * 100 | round / 100 | tostring) end;
	def pct(x): (x * 1000 | round / 10 | tostring) + "%";
	def ok(c): if c then "yes" else "**no**" end;
	def errs(w): (w.errors | .connect + .read + .write + .status + .timeout);
	def row(name; w): "| \(name) | \(w.req_s | floor) | \(w.p50_ms) | \(w.p99_ms) | \(errs(w)) |";
	. as $d |
	"# make bench, \(.date) (commit \(.commit))\n\n\(.machine)\n\nOpenBLAS sgemm peak \(.ours.sgemm_peak_gflops) GFLOP/s (1024^3, \(.ours.threads) threads); PyTorch \(.torch.torch_version), \(.torch.threads) threads.\n",
	"## Engine (images/s)\n\nThe two sides took turns \(.engine_rounds | length) times: each figure is the median of its side, each ratio the median of the ratios of the turns.\n\n| case | ours | PyTorch | ours / PyTorch | target | met |\n|---|---|---|---|---|---|",
	(.ratios | to_entries[] | .key as $k |
	 ({"reconstruct_b1_img_s": 8, "reconstruct_b32_img_s": 5, "reconstruct_b256_img_s": 5,
	   "encode_b1_img_s": 3, "train_b32_img_s": 6}[$k]) as $t |
	 "| \($k | sub("_img_s"; "")) | \($d.ours[$k] | floor) | \($d.torch[$k] | floor) | \(f(.value)) | \(if $t then "≥ \($t)" else "" end) | \(if $t then ok(.value >= $t) else "" end) |"),
	"\nFraction of the sgemm peak reached: reconstruct batch 32 \(pct(.fraction_of_sgemm_peak.reconstruct_b32)) and batch 256 \(pct(.fraction_of_sgemm_peak.reconstruct_b256)) (target ≥ 50%: \(ok(.fraction_of_sgemm_peak.reconstruct_b32 >= 0.5 and .fraction_of_sgemm_peak.reconstruct_b256 >= 0.5))); training \(pct(.fraction_of_sgemm_peak.train_b32)) (target ≥ 35%: \(ok(.fraction_of_sgemm_peak.train_b32 >= 0.35))).\n",
	"## HTTP: wrk, \(.http.connections) connections, \(.http.seconds) s, POST \(.http.image)\n\n| server, route | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|",
	row("bare libmicrohttpd responder"; .http.bare_mhd),
	row("aeserve /v1/encode"; .http.aeserve.encode),
	row("aeserve /v1/reconstruct (PNG out)"; .http.aeserve.reconstruct_png),
	(if .http.fastapi.encode then row("FastAPI + PyTorch /v1/encode"; .http.fastapi.encode), row("FastAPI + PyTorch /v1/reconstruct (PNG out)"; .http.fastapi.reconstruct_png) else "| FastAPI + PyTorch | \(.http.fastapi.note) | | | |" end),
	"\n| HTTP target | measured | met |\n|---|---|---|",
	"| encode ≥ 40% of bare | \(pct(.http_ratios.encode_vs_bare)) | \(ok(.http_ratios.encode_vs_bare >= 0.4)) |",
	"| reconstruct (PNG) ≥ 10% of bare | \(pct(.http_ratios.reconstruct_png_vs_bare)) | \(ok(.http_ratios.reconstruct_png_vs_bare >= 0.1)) |",
	"| encode ≥ 10× FastAPI | \(f(.http_ratios.encode_vs_fastapi))× | \(ok((.http_ratios.encode_vs_fastapi // 0) >= 10)) |",
	"| reconstruct ≥ 10× FastAPI | \(f(.http_ratios.reconstruct_png_vs_fastapi))× | \(ok((.http_ratios.reconstruct_png_vs_fastapi // 0) >= 10)) |",
	"| encode p99 ≤ 5 ms | \(.http.aeserve.encode.p99_ms) ms | \(ok(.http.aeserve.encode.p99_ms <= 5)) |",
	"| reconstruct p99 ≤ 10 ms | \(.http.aeserve.reconstruct_png.p99_ms) ms | \(ok(.http.aeserve.reconstruct_png.p99_ms <= 10)) |",
	"| zero errors (aeserve) | \(errs(.http.aeserve.encode) + errs(.http.aeserve.reconstruct_png)) | \(ok(errs(.http.aeserve.encode) + errs(.http.aeserve.reconstruct_png) == 0)) |",
	"| peak RSS ≤ 100 MB (3 models, after both loads) | \(.http.aeserve.peak_rss_kb / 1024 | floor) MB (FastAPI: \(if .http.fastapi.peak_rss_kb then (.http.fastapi.peak_rss_kb / 1024 | floor | tostring) + " MB" else "n/a" end)) | \(ok(.http.aeserve.peak_rss_kb <= 102400)) |",
	"| /readyz 200 ≤ 200 ms after launch | \(.http.aeserve.ready_ms) ms | \(ok(.http.aeserve.ready_ms <= 200)) |",
	"\n## One model, three runtimes: \(.engines.model) (images/s, \(.engines.threads) threads)\n\nOurs at each precision this CPU runs, ONNX Runtime \(if .engines.onnxruntime != "" then .engines.onnxruntime + " (npm onnxruntime-node, CPU; the model exported by " + .engines.onnx_exporter + ")" else "(missing)" end) and PyTorch \(.engines.torch), on the same test digits, in turns seconds apart (medians; ratios: medians of the turns'"'"' ratios). Best: \(.engines.best | sub("ours_"; "")), the precision aeserve --precision auto runs here.\n",
	(.engines.notes[] | "- \(.)"),
	"\n| op | batch | ours fp32 | ours bf16 | ours int8 | ONNX Runtime | PyTorch | fp32 / ORT | best / ORT | fp32 / PyTorch | best / PyTorch | int8 / fp32 |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
	(.engines.cases[] | . as $c | $d.engines.best as $best |
	 def v(k): if $c.img_s[k] then ($c.img_s[k] | floor | tostring) else "n/a" end;
	 def r(k): if $c.ratios[k] then f($c.ratios[k]) else "n/a" end;
	 def own(a; b): ([$c.turns[] | select(.[a] and .[b]) | .[a] / .[b]] | if length > 0 then (sort | .[(length - 1) / 2 | floor]) else null end);
	 "| \(.op) | \(.batch) | \(v("ours_fp32")) | \(v("ours_bf16")) | \(v("ours_int8")) | \(v("ort")) | \(v("torch")) | \(r("ours_fp32_vs_ort")) | \(r($best + "_vs_ort")) | \(r("ours_fp32_vs_torch")) | \(r($best + "_vs_torch")) | \(f(own("ours_int8"; "ours_fp32"))) |"),
	"\nLargest difference of a pixel from ours in fp32, reconstruct, 32 digits: \(.engines.max_abs_diff_reconstruct_vs_ours_fp32 | to_entries | map("\(.key | sub("ours_"; "ours ")) \(.value * 1e6 | round / 1e6)") | join(", ")).\n",
	"\n## The service against its engine (\(.service.precision), \(.service.image))\n\naeserve /v1/reconstruct under wrk (64 connections) and the engine reconstructing batches of 32 in one process, in \(.service.turns | length) turns each, seconds apart: \(.service.http_req_s | floor) requests/s against \(.service.engine_b32_img_s | floor) images/s, **\(pct(.service.ratio))** (median of the turns'"'"' ratios: \(.service.turns | map(.ratio * 100 | round | tostring + "%") | join(", "))); target ≥ 85%: \(ok(.service.ratio >= 0.85)).\n",
	"\n## Latency at a fixed arrival rate (aeserve, \(.latency.precision), \(.latency.image))\n\nRequests sent at 50% and 80% of the route'"'"'s most requests/s under wrk (64 connections, a closed loop), whatever the answers do (bench/openloop.c: Poisson arrivals, latency from when each request was due).\n\n| route | wrk max req/s | share | req/s asked | answered/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | not 200 / errors / unanswered |\n|---|---|---|---|---|---|---|---|---|---|---|",
	(.latency.routes[] | . as $r | .open_loop[] | "| \($r.route) | \($r.closed_loop_max.req_s | floor) | \(.share_of_max)% | \(.rate_asked | floor) | \(.rate_answered | floor) | \(.p50_ms) | \(.p90_ms) | \(.p99_ms) | \(.p999_ms) | \(.max_ms) | \(.other_status) / \(.connection_errors) / \(.timeouts) |"),
	"\n## Image size (batch 32, images/s; peak RSS of the process, MB)\n\nMedians of \(.sizes[0].rounds | length) turns each, the two sides alternating seconds apart (bench/sizes.sh).\n\n| size | train ours | train PyTorch | ratio | reconstruct ours | reconstruct PyTorch | ratio | ≥ 5× both | RSS ours | RSS PyTorch |\n|---|---|---|---|---|---|---|---|---|---|",
	(.sizes[] | "| \(.size) | \(.ours.train_b32_img_s | floor) | \(.torch.train_b32_img_s | floor) | \(f(.train_ratio)) | \(.ours.reconstruct_b32_img_s | floor) | \(.torch.reconstruct_b32_img_s | floor) | \(f(.reconstruct_ratio)) | \(ok(.train_ratio >= 5 and .reconstruct_ratio >= 5)) | \(.ours.peak_rss_kb / 1024 | floor) | \(.torch.peak_rss_kb / 1024 | floor) |")
' "$out" > "$md"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cp "$out" "bench/results/$stamp.json"
cp "$md" "bench/results/$stamp.md"
cat "$md"
