#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and the CUDA toolkit, build minipipe with the CUDA
# backend for this GPU's architecture and run what a CPU-only machine skips — the CUDA runtime and
# allocator tests (test_cuda), every kernel against its CPU reference (test_cuda_ops), and a few
# training steps of an MLP and a tiny GPT on cuda:0 against the same steps on the CPU
# (test_cuda_train), the communicators on device tensors and pipelines and data parallelism on GPUs
# (test_cuda_pipeline: local ranks sharing a GPU; nccl where there are 2+ GPUs), then the kernel
# benchmark (bench_cuda). Prints a one-screen summary; exits non-zero if anything failed.
# Run: scripts/gpu_check.sh [build-dir]   (default build-gpu/; about a minute of nvcc on 16 cores)
set -uo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-gpu}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

echo "== GPU check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
start=$(date +%s)
if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMINIPIPE_CUDA=ON \
     -DMINIPIPE_CUDA_ARCHITECTURES=native -DMINIPIPE_MPI=OFF >"$dir.configure.log" 2>&1; then
  echo "configure failed:"; tail -20 "$dir.configure.log"; exit 1
fi
if ! cmake --build "$dir" -j "$(nproc)" --target test_cuda test_cuda_ops test_cuda_train test_cuda_pipeline train_mlp bench_cuda >"$dir.build.log" 2>&1; then
  echo "build failed:"; grep -E "error|Error" "$dir.build.log" | head -30; exit 1
fi
echo "== built in $(( $(date +%s) - start )) s"

status=0
summary=()
for t in test_cuda test_cuda_ops test_cuda_train test_cuda_pipeline; do
  log="$dir/$t.log"
  if timeout 300 "$dir/$t" --gtest_brief=0 >"$log" 2>&1; then result=ok; else result=FAILED; status=1; fi
  passed=$(grep -c "^\[       OK \]" "$log"); failed=$(grep -c "^\[  FAILED  \]" "$log"); skipped=$(grep -c "^\[  SKIPPED \]" "$log")
  summary+=("$(printf '%-16s %-7s passed %3d  failed %3d  skipped %3d' "$t" "$result" "$passed" "$failed" "$skipped")")
  if [ "$result" = FAILED ]; then grep -E "Failure|FAILED|error|Expected|Which is|cpu .* cuda" "$log" | head -40; fi
done
echo "== losses (CPU vs cuda:0)"
grep -E "^(mlp|gpt) step" "$dir/test_cuda_train.log" || true
echo "== kernels (bench_cuda)"
timeout 300 "$dir/bench_cuda" --reps 20 || status=1
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
