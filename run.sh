#!/usr/bin/env bash
# The main job: install what is missing, build, then train the MLP on Fashion-MNIST.
# Extra arguments go to the trainer: ./run.sh --epochs 3
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
minipipe_install_packages
minipipe_build --target train_mlp
exec ./build/train_mlp "$@"
