#!/usr/bin/env bash
# The whole test suite: install what is missing, build everything (library, examples,
# benchmarks, the CUDA build check when nvcc is present), then run every test through ctest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
minipipe_install_packages
minipipe_build
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
