#!/usr/bin/env bash
# The GPU check: what a CPU-only machine skips. The CUDA runtime and allocator tests (test_cuda),
# every kernel against its CPU reference (test_cuda_ops), a few training steps of an MLP and a tiny
# GPT on cuda:0 against the same steps on the CPU (test_cuda_train), the communicators on device
# tensors and pipelines and data parallelism on GPUs (test_cuda_pipeline: ranks sharing a GPU over
# local; nccl where there are 2+ GPUs), then the kernel benchmark (bench_cuda).
#   scripts/gpu_check.sh        builds the programs here (build-gpu/, for this GPU): a machine with
#                               the Debian packages scripts/setup.sh installs
#   scripts/gpu_check.sh .gpu   runs the programs scripts/gpu_bundle.sh built elsewhere, for a GPU
#                               machine that cannot build them (no packages, no network)
# Prints a line per program as it ends (skipped tests by name, a failure's messages and last lines)
# and a summary; copies the logs to $OUT when it is set. Every step has its own time limit, all of
# them together under ten minutes. Exits non-zero if anything failed or if no test ran on a GPU.
set -uo pipefail
bundle=""
[ -n "${1:-}" ] && bundle=$(realpath "$1")  # before the cd: relative to where it was called from
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
echo "== GPU check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
start=$(date +%s)
logs=$(mktemp -d)
if [ -n "$bundle" ]; then
  [ -f "$bundle/bundle.tar.xz" ] || { echo "no $bundle/bundle.tar.xz: run scripts/gpu_bundle.sh first"; exit 1; }
  root=$(mktemp -d)
  tar -xJf "$bundle/bundle.tar.xz" -C "$root" || { echo "cannot unpack $bundle/bundle.tar.xz"; exit 1; }
  bin="$root/bin"
  # cuBLAS and NCCL are loaded when first used: from the toolkit's folders or pip's nvidia-* packages.
  libpath="$root/lib"
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && libpath="$libpath:$d"
  done
  nvidia=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
  for d in ${nvidia:+"$nvidia"/*/lib}; do [ -d "$d" ] && libpath="$libpath:$d"; done
  export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export MINIPIPE_PROGRAM_DIR="$bin"  # where test_cuda_pipeline finds train_mlp
  [ -d "$bundle/fashion-mnist" ] && export MINIPIPE_FASHION_MNIST="$bundle/fashion-mnist"
  for lib in libcublas.so.13 libnccl.so.2; do
    found=$(for d in ${libpath//:/ }; do [ -e "$d/$lib" ] && echo "$d/$lib" && break; done)
    echo "   $lib: ${found:-not found (the tests that need it fail naming it)}"
  done
else
  bin=build-gpu
  if ! timeout 120 cmake -S . -B "$bin" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMINIPIPE_CUDA=ON \
       -DMINIPIPE_CUDA_ARCHITECTURES=native -DMINIPIPE_MPI=OFF >"$logs/configure.log" 2>&1; then
    echo "configure failed:"; tail -20 "$logs/configure.log"; exit 1
  fi
  grep -E "minipipe: (CUDA|no NCCL|nccl)" "$logs/configure.log"
  if ! timeout 300 cmake --build "$bin" -j "$(nproc)" --target test_cuda test_cuda_ops test_cuda_train \
       test_cuda_pipeline train_mlp bench_cuda >"$logs/build.log" 2>&1; then
    echo "build failed:"; grep -E "error|Error|undefined reference|FAILED:" "$logs/build.log" | head -30
    tail -5 "$logs/build.log"; exit 1
  fi
fi
echo "== ready in $(( $(date +%s) - start )) s"

status=0
on_gpu=0
summary=()
# name, time limit in seconds
for step in test_cuda:60 test_cuda_ops:150 test_cuda_train:120 test_cuda_pipeline:180; do
  t=${step%%:*}
  limit=${step##*:}
  log="$logs/$t.log"
  timeout -k 10 "$limit" "$bin/$t" >"$log" 2>&1
  rc=$?
  # gtest repeats failed and skipped names in a list at the end: count the per-test lines only.
  passed=$(grep -cE '^\[       OK \] .* \([0-9]+ ms\)$' "$log")
  failed=$(grep -cE '^\[  FAILED  \] .* \([0-9]+ ms\)$' "$log")
  skipped=$(grep -cE '^\[  SKIPPED \] .* \([0-9]+ ms\)$' "$log")
  result=ok
  ((rc == 0)) || { result="FAILED (exit $rc$( ((rc == 124)) && echo ": over its ${limit} s"))"; status=1; }
  [ "$t" = test_cuda_ops ] && on_gpu=$passed  # the others have tests that pass on the CPU too
  line=$(printf '%-19s passed %3d  failed %3d  skipped %3d  %s' "$t" "$passed" "$failed" "$skipped" "$result")
  summary+=("$line")
  echo "$line"
  # Skipped tests by name (with a GPU: those that need two), at most 12 of them.
  grep -E '^\[  SKIPPED \] .* \([0-9]+ ms\)$' "$log" | head -12 | sed 's/^/   /'
  ((skipped > 12)) && echo "   ... and $((skipped - 12)) more"
  if ((rc != 0)); then
    grep -E "Failure|Expected|Which is|error|what\(\)|cpu .* cuda" "$log" | head -30 | sed 's/^/   /'
    echo "   -- last lines:"; tail -8 "$log" | sed 's/^/   /'
  fi
done
echo "== losses (CPU vs cuda:0)"
grep -E "^(mlp|gpt) step" "$logs/test_cuda_train.log" || true
echo "== kernels (bench_cuda)"
timeout -k 10 60 "$bin/bench_cuda" --reps 20 2>&1 | tee "$logs/bench_cuda.log"
((${PIPESTATUS[0]} == 0)) || status=1
if grep -q "no CUDA device" "$logs/bench_cuda.log" || ((on_gpu == 0)); then
  echo "no test ran on a GPU: is the device visible (nvidia-smi), and does the driver support this CUDA?"
  status=1
fi
echo "== summary ($(( $(date +%s) - start )) s)"
printf '%s\n' "${summary[@]}"
[ -n "${OUT:-}" ] && cp "$logs"/*.log "$OUT"/ 2>/dev/null
exit $status
