#!/usr/bin/env bash
# Shared by run.sh and test.sh: install the Debian packages minipipe needs (only those missing),
# then configure and build into build/ (Release, Ninja). Sourced, not run.
set -euo pipefail

# OpenMP threads sleep instead of spinning while they wait. On a shared, busy 2-core machine
# spinning threads steal the cores the working ones need: 2-thread training steps ~25x slower
# (1 076 against 25 923 samples/s, docs/performance.md). The example programs choose this
# themselves (minipipe::init_runtime); exporting it here covers everything else these scripts
# start. On cores of your own, GOMP_SPINCOUNT=300000 (libgomp's default spinning) is 20-25% faster.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

MINIPIPE_PACKAGES=(cmake ninja-build g++ libeigen3-dev libopenblas-openmp-dev libgtest-dev
  libbenchmark-dev libcli11-dev nlohmann-json3-dev zlib1g-dev dataset-fashion-mnist fortunes)

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

minipipe_build() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${MINIPIPE_CMAKE_ARGS:-} >/dev/null
  cmake --build "$root/build" -j "$(nproc)" "$@"
}
