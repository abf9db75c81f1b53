#!/usr/bin/env bash
# Regenerates every chart and screenshot in docs/figures/ from the project's own programs:
#   simulated Gantt charts      build/show_schedule --svg         (docs/schedules.md)
#   measured and predicted      build/bench_schedules --svg-dir   (docs/schedules.md, 2 ranks on 2 cores)
#   a trainer's traced step     build/train_gpt --trace           (docs/pipeline.md)
#   the explorer's screenshot   build/make_explorer + headless chromium
# and prints the tables the docs quote next to them. Measured figures change from run to run and
# machine to machine: run it on an idle machine (it prints the load average and the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
minipipe_install_packages
minipipe_build --target examples bench_schedules >/dev/null
out=docs/figures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== simulated (show_schedule --svg): P=4, M=8, F=1, B=2, 1 MiB stashed per stage and micro-batch"
build/show_schedule --schedule gpipe --stages 4 --microbatches 8 --act-bytes 1048576 --svg "$out/sim_gpipe_P4_M8.svg" >/dev/null
build/show_schedule --schedule 1f1b --stages 4 --microbatches 8 --act-bytes 1048576 --svg "$out/sim_1f1b_P4_M8.svg" >/dev/null
build/show_schedule --schedule interleaved --stages 4 --microbatches 8 --virtual 2 --act-bytes 1048576 \
  --svg "$out/sim_interleaved_P4_M8_v2.svg" >/dev/null

echo "== simulated zero-bubble schedules: P=4, M=8, F=B=W=1"
for s in zb-h1 zb-h2; do
  build/show_schedule --schedule $s --stages 4 --microbatches 8 --costs 1,1,1 --act-bytes 1048576 \
    --svg "$out/sim_${s}_P4_M8.svg" >/dev/null
done

echo "== measured (bench_schedules): 2 ranks on 2 cores, 8 blocks of 1024, batch 256"
build/bench_schedules --schedules gpipe,1f1b,interleaved --stages 1,2 --microbatches 1,2,4,8 --checkpoint never,always \
  --steps 5 --svg-dir "$tmp/bench" --csv "$tmp/bench.csv"
for s in gpipe_P2_M4_v1_never 1f1b_P2_M4_v1_never interleaved_P2_M4_v2_never; do
  cp "$tmp/bench/${s}_measured.svg" "$out/measured_${s}.svg"
  cp "$tmp/bench/${s}_predicted.svg" "$out/predicted_${s}.svg"
done

echo "== zero bubble, measured (bench_schedules): transformer blocks, 2 ranks on 2 cores, 4 micro-batches"
build/bench_schedules --model gpt --width 256 --blocks 8 --batch 32 --context 64 --schedules 1f1b,zb-h1,zb-h2 \
  --stages 1,2 --microbatches 4 --checkpoint never --steps 5 --svg-dir "$tmp/zb" | grep -E '^(schedule|1f1b|zb)'
for s in 1f1b zb-h1 zb-h2; do
  cp "$tmp/zb/${s}_P2_M4_v1_never_measured.svg" "$out/gpt_measured_${s}_P2_M4.svg"
  cp "$tmp/zb/${s}_P2_M4_v1_never_predicted.svg" "$out/gpt_predicted_${s}_P2_M4.svg"
done

echo "== a traced training step: train_gpt, 2 stages, 1F1B, 4 micro-batches, step 20"
build/train_gpt --stages 2 --microbatches 4 --steps 20 --eval-interval 20 --eval-iters 1 --sample 0 \
  --trace "$tmp/gpt" --trace-step 20 | sed -n '/^trace:/,/^wrote/p'
cp "$tmp/gpt/measured.svg" "$out/train_gpt_measured.svg"
cp "$tmp/gpt/predicted.svg" "$out/train_gpt_predicted.svg"

echo "== the explorer (make_explorer, screenshot by headless chromium)"
build/make_explorer --out "$tmp/explorer.html"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
  --user-data-dir="$tmp/profile" --hide-scrollbars --window-size=1040,900 --screenshot="$out/explorer.png" \
  "file://$tmp/explorer.html?schedule=interleaved&P=4&M=8&v=2" 2>/dev/null
echo "wrote $(ls "$out" | wc -l) files in $out/"
