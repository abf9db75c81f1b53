#!/usr/bin/env bash
# The main job: install what is missing, build, then train the MLP on Fashion-MNIST as a two-stage
# pipeline (1F1B, 4 micro-batches per batch, ranks as threads of this process). Extra arguments go
# to the trainer and win over these: ./run.sh --epochs 3, ./run.sh --stages 1 (one device).
# It builds every example program (build/train_mlp, train_gpt, show_schedule, show_partition),
# so the other commands in README.md work after it; it runs only train_mlp.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
minipipe_install_packages
minipipe_build --target examples
exec ./build/train_mlp --stages 2 --microbatches 4 --schedule 1f1b --comm local "$@"
