#!/usr/bin/env bash
# The whole test suite: install what is missing, build everything (library, examples, benchmarks,
# the CUDA build check when nvcc is present), then run every test through ctest. Arguments go to
# ctest (./test.sh -R Pipe), except --sanitizers (what CI runs), which adds two more builds:
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: the whole suite again;
#   build-tsan/  ThreadSanitizer: the local communicator, executor, data-parallel, async and allocator tests
#                (ranks are threads).
set -euo pipefail
cd "$(dirname "$0")"
sanitizers=0
ctest_args=()
for arg in "$@"; do
  if [ "$arg" = "--sanitizers" ]; then sanitizers=1; else ctest_args+=("$arg"); fi
done
source scripts/setup.sh
minipipe_install_packages
minipipe_build
(cd build && ctest --output-on-failure -j "$(nproc)" ${ctest_args[@]+"${ctest_args[@]}"})
((sanitizers)) || exit 0

echo "== AddressSanitizer + UndefinedBehaviorSanitizer: the whole suite (build-asan/) =="
minipipe_sanitizer_build build-asan MINIPIPE_SANITIZE tests
(cd build-asan && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --output-on-failure -j "$(nproc)" ${ctest_args[@]+"${ctest_args[@]}"})

echo "== ThreadSanitizer: the local communicator, executor, data-parallel, async and allocator tests (build-tsan/) =="
tsan_tests=(test_comm test_pipe test_pipeline_equivalence test_pipeline_memory test_data_parallel test_allocator
            test_stage_replicas_pipe test_async_pipeline)
minipipe_sanitizer_build build-tsan MINIPIPE_TSAN "${tsan_tests[@]}"
for t in "${tsan_tests[@]}"; do
  echo "-- $t"
  OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" \
    "build-tsan/$t" --gtest_brief=1
done
