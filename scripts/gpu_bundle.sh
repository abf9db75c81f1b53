#!/usr/bin/env bash
# Builds, on this machine, the programs scripts/gpu_check.sh runs, for a GPU machine that cannot
# build minipipe itself (an image with the CUDA toolkit but none of the Debian packages, and no
# network): the four CUDA test programs, train_mlp and bench_cuda, for sm_90 (H100, H200) plus
# compute_80 PTX, generic x86-64 code (no -march=native: the GPU machine's CPU may differ), no MPI.
# Packs them, stripped, with the shared libraries they load that are not glibc's or the compiler's
# own (OpenBLAS, libgomp, ...), into .gpu/bundle.tar.xz, and Fashion-MNIST into .gpu/fashion-mnist
# (.gpu/ is ignored by git; the device tool's `carry: [".gpu"]` takes it along). Then, there:
#   scripts/gpu_check.sh .gpu
# Prints the bundle's size and the newest glibc / libstdc++ symbol versions the programs need (the
# GPU machine's must be as new).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
minipipe_install_packages
dir=build-gpu-bundle
programs=(test_cuda test_cuda_ops test_cuda_train test_cuda_pipeline train_mlp bench_cuda)
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMINIPIPE_CUDA=ON -DMINIPIPE_NATIVE=OFF \
  -DMINIPIPE_CUDA_ARCHITECTURES="90-real;80-virtual" -DMINIPIPE_MPI=OFF -DMINIPIPE_PYTHON=OFF \
  -DMINIPIPE_EXERCISES=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target "${programs[@]}"

stage="$dir/bundle"
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib"
for p in "${programs[@]}"; do strip -o "$stage/bin/$p" "$dir/$p"; done
# Every library the loader resolves for them, but glibc's and the compiler runtime's: those the GPU
# machine has, and a second copy of them would fight its own.
ldd "$stage"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
rm -rf .gpu && mkdir -p .gpu
tar -cJf .gpu/bundle.tar.xz -C "$stage" bin lib
# Fashion-MNIST for train_mlp (CudaTrainers.TrainMlpOnGpusMatchesTheCpu): 30 MB, already gzipped.
cp -r /usr/share/datasets/fashion-mnist .gpu/
echo "== .gpu/bundle.tar.xz: $(du -h .gpu/bundle.tar.xz | cut -f1) ($(ls "$stage/lib" | tr '\n' ' ')); .gpu in all: $(du -sh .gpu | cut -f1)"
need() { objdump -T "$stage"/bin/* "$stage"/lib/* 2>/dev/null | grep -oE "$1[0-9.]+" | sort -uV | tail -1; }
echo "== the GPU machine needs glibc >= $(need 'GLIBC_2\.' | cut -d_ -f2) and libstdc++ >= $(need 'GLIBCXX_3\.' | cut -d_ -f2)"
