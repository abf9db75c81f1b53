#!/usr/bin/env bash
# Builds the CPU benchmarks (Release) twice — MINIPIPE_BLAS=ON (matmul calls cblas_sgemm
# directly, one call per GEMM; the default) in build-bench/ and MINIPIPE_BLAS=OFF (Eigen's own
# GEMM) in build-bench-eigen/ — runs them with interleaved repetitions and prints each program's
# table of medians: GEMM, elementwise ops, the MLP training step and the GPT training step.
# Several minutes in all, the GPT step the longest. Output is also kept in build-bench/results/
# (text and JSON).
#
#   benchmarks/run_benchmarks.sh               # everything
#   REPS=5 MIN_TIME=0.5 benchmarks/run_benchmarks.sh   # slower, steadier
#   ONLY=matmul benchmarks/run_benchmarks.sh   # one of: matmul, eigen, elementwise, mlp, gpt
#
# bench_gpt times each model for at least 2 s per repetition whatever MIN_TIME says (one step of
# its larger model takes most of a second on one core, docs/gpt.md). The benchmarks keep OpenMP's default (spinning) waits: on an idle
# machine they are 20-25% faster than passive ones (docs/performance.md, Caveats).
#
# The machines have 2 cores: anything else running (a compile) shows up in the numbers, and
# 2-thread runs suffer most. bench_matmul prints a "busy" column (CPU time / wall time / threads)
# that falls below ~0.95 when the benchmark did not have its cores to itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPS="${REPS:-3}"
MIN_TIME="${MIN_TIME:-0.2}"
ONLY="${ONLY:-all}"
JOBS="${JOBS:-2}"
OUT="$ROOT/build-bench/results"

build() {  # build <dir> <cmake args...>
  local dir="$1"; shift
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  ninja -C "$dir" -j"$JOBS" bench_matmul bench_elementwise bench_mlp_step bench_gpt >/dev/null
}

run() {  # run <name> <binary> <args...>
  local name="$1" bin="$2"; shift 2
  echo
  echo "================ $name: $bin $* ================"
  "$bin" --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
    --benchmark_color=false \
    --benchmark_out="$OUT/$name.json" --benchmark_out_format=json "$@" 2>&1 | tee "$OUT/$name.txt"
}

want() { [[ "$ONLY" == all || "$ONLY" == "$1" ]]; }

echo "building (Release) in build-bench/ (MINIPIPE_BLAS=ON) and build-bench-eigen/ (MINIPIPE_BLAS=OFF)..."
build "$ROOT/build-bench" -DMINIPIPE_BLAS=ON
if want eigen; then build "$ROOT/build-bench-eigen" -DMINIPIPE_BLAS=OFF; fi
mkdir -p "$OUT"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

if want matmul; then
  run matmul "$ROOT/build-bench/bench_matmul" --benchmark_min_time="$MIN_TIME"
fi
if want eigen; then
  # Eigen's own GEMM against the same cblas_sgemm baseline; the MLP shapes and 1024^3 only.
  run matmul_eigen "$ROOT/build-bench-eigen/bench_matmul" --benchmark_min_time="$MIN_TIME" \
    --benchmark_filter='sq(512|1024)|fc'
fi
if want elementwise; then
  run elementwise "$ROOT/build-bench/bench_elementwise" --benchmark_min_time="$(awk -v t="$MIN_TIME" 'BEGIN { print (t < 0.1 ? t : 0.1) }')"
fi
if want mlp; then
  run mlp_step "$ROOT/build-bench/bench_mlp_step" --benchmark_min_time="$MIN_TIME"
fi
if want gpt; then
  run gpt_step "$ROOT/build-bench/bench_gpt"
fi
echo
echo "done; load average now $(cut -d' ' -f1-3 /proc/loadavg). Results: $OUT/"
