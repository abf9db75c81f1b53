#!/usr/bin/env bash
# Shared by run.sh and test.sh: install the Debian packages minipipe needs (only those missing),
# then configure and build into build/ (Release, Ninja), or a sanitizer build into its own
# directory. Sourced, not run.
set -euo pipefail

# OpenMP threads sleep instead of spinning while they wait. On a shared, busy 2-core machine
# spinning threads steal the cores the working ones need: 2-thread training steps ~25x slower
# (1 076 against 25 923 samples/s, docs/performance.md). The example programs choose this
# themselves (minipipe::init_runtime); exporting it here covers everything else these scripts
# start. On cores of your own, GOMP_SPINCOUNT=300000 (libgomp's default spinning) is 20-25% faster.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

# chromium: the schedule explorer's page is tested in headless Chromium (tests/test_trace_cli.cpp)
# and scripts/make_docs_figures.sh screenshots it; it adds 24 packages, ~10 s to a first install.
# pybind11-dev, python3-dev, python3-numpy, python3-pytest: the Python module `minipipe` (python/)
# and its pytest suites, run by ctest (docs/python.md).
MINIPIPE_PACKAGES=(cmake ninja-build g++ libeigen3-dev libopenblas-openmp-dev libgtest-dev
  libbenchmark-dev libcli11-dev nlohmann-json3-dev zlib1g-dev openmpi-bin libopenmpi-dev
  dataset-fashion-mnist fortunes chromium pybind11-dev python3-dev python3-numpy python3-pytest)

minipipe_install_packages() {
  local missing=()
  for p in "${MINIPIPE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "minipipe: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

MINIPIPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The Release build in build/; arguments go to cmake --build (e.g. --target examples).
minipipe_build() {
  cmake -S "$MINIPIPE_ROOT" -B "$MINIPIPE_ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${MINIPIPE_CMAKE_ARGS:-} >/dev/null
  cmake --build "$MINIPIPE_ROOT/build" -j "$(nproc)" "$@"
}

# A sanitizer build: minipipe_sanitizer_build DIR CMAKE_OPTION TARGET... Compiled -O1 -g1: line
# numbers in reports at a third of RelWithDebInfo's compile time. The tests, examples and
# benchmarks of the ASan build at -O0 (CMakeLists.txt, MINIPIPE_DRIVER_OPTIONS): their objects took
# 216 CPU-seconds to compile instead of 451, and the suite ran as fast. No CUDA build check and no
# course exercises (build/ has both), and no Python module (a sanitized shared object would need
# the runtime preloaded into python3).
minipipe_sanitizer_build() {
  local dir="$MINIPIPE_ROOT/$1" option="$2"
  shift 2
  local drivers=""
  [ "$option" = MINIPIPE_SANITIZE ] && drivers="-O0"
  cmake -S "$MINIPIPE_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" \
    -D"$option"=ON -DMINIPIPE_CUDA=OFF -DMINIPIPE_PYTHON=OFF -DMINIPIPE_EXERCISES=OFF \
    -DMINIPIPE_DRIVER_OPTIONS="$drivers" >/dev/null
  for target in "$@"; do cmake --build "$dir" -j "$(nproc)" --target "$target"; done
}
