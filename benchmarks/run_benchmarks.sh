#!/usr/bin/env bash
# Builds the CPU benchmarks (Release) twice — MINIPIPE_BLAS=ON (matmul calls cblas_sgemm
# directly, one call per GEMM; the default) in build-bench/ and MINIPIPE_BLAS=OFF (Eigen's own
# GEMM) in build-bench-eigen/ — runs them with interleaved repetitions and prints each program's
# table of medians: GEMM, elementwise ops, per-call overhead, the MLP training step and the GPT
# training step. Several minutes in all, the GPT step the longest. Output is also kept in
# build-bench/results/ (text and JSON).
#
#   benchmarks/run_benchmarks.sh               # everything
#   REPS=5 MIN_TIME=0.5 benchmarks/run_benchmarks.sh   # slower, steadier
#   ONLY=matmul benchmarks/run_benchmarks.sh   # one of: matmul, eigen, elementwise, overhead, mlp, gpt
#   benchmarks/run_benchmarks.sh --libtorch    # minipipe beside libtorch: one table, ratio per row
#   benchmarks/run_benchmarks.sh --smoke       # the smallest sweep, seconds (what CI runs)
#
# Flags (environment variables of the same meaning in brackets; a flag wins):
#   --libtorch        install libtorch-dev (apt) if missing, build the libtorch twins
#                     (benchmarks/torch/, -DMINIPIPE_LIBTORCH=ON) and run each pair — overhead,
#                     mlp, gpt — alternating the two programs REPS times (one repetition per run),
#                     then print one table: minipipe, libtorch, ratio (medians of the runs).
#   --smoke           the smallest sweep: one repetition, one thread, the smallest shape of each
#                     program, no Eigen build; with --libtorch, the smallest pairs.
#   --only NAME       [ONLY] one program: matmul, eigen, elementwise, overhead, mlp, gpt
#   --threads LIST    [THREADS] thread counts, e.g. 1,2 (default 1,2; --smoke: 1)
#   --reps N          [REPS] repetitions, or runs of each program with --libtorch (default 3)
#   --build-dir DIR   [BUILD_DIR] where the programs are built (default build-bench/)
#   --no-build        run what is already built in the build directory (CI: build/)
#   --out DIR         [OUT] where the results go (default BUILD_DIR/results)
#
# bench_gpt (and its twin) times each model for at least 2 s per repetition whatever MIN_TIME
# says (one step of its larger model takes most of a second on one core, docs/gpt.md). The
# benchmarks keep OpenMP's default (spinning) waits: on an idle machine they are 20-25% faster
# than passive ones (docs/performance.md, Caveats); libtorch's OpenMP is the same libgomp.
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
THREADS="${THREADS:-}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
OUT="${OUT:-}"
LIBTORCH=0
SMOKE=0
NO_BUILD=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "run_benchmarks.sh: $*" >&2; echo "run_benchmarks.sh --help lists the flags" >&2; exit 2; }
need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --libtorch) LIBTORCH=1 ;;
    --smoke) SMOKE=1 ;;
    --no-build) NO_BUILD=1 ;;
    --only) need_value "$@"; ONLY="$2"; shift ;;
    --threads) need_value "$@"; THREADS="$2"; shift ;;
    --reps) need_value "$@"; REPS="$2"; shift ;;
    --build-dir) need_value "$@"; BUILD_DIR="$2"; shift ;;
    --out) need_value "$@"; OUT="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
  shift
done

case "$ONLY" in all|matmul|eigen|elementwise|overhead|mlp|gpt) ;;
  *) die "ONLY/--only must be one of all, matmul, eigen, elementwise, overhead, mlp, gpt; got '$ONLY'" ;; esac
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "REPS/--reps must be a positive integer, got '$REPS'"
if ((SMOKE)); then
  REPS=1
  MIN_TIME=0.01
  THREADS="${THREADS:-1}"
fi
THREADS="${THREADS:-1,2}"
[[ "$THREADS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "THREADS/--threads must be a list like 1,2; got '$THREADS'"
if ((LIBTORCH)) && [[ "$ONLY" =~ ^(matmul|eigen|elementwise)$ ]]; then
  die "--libtorch compares overhead, mlp and gpt only (no twin of $ONLY)"
fi
mkdir -p "$BUILD_DIR"
BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"
OUT="${OUT:-$BUILD_DIR/results}"
mkdir -p "$OUT"

want() { [[ "$ONLY" == all || "$ONLY" == "$1" ]]; }

# The smallest shape of each program for --smoke; the full set otherwise. The GPT pair runs
# train_gpt's default model and the issue's L6-C256-H8-T128-B16 (bench_gpt alone runs all five).
if ((SMOKE)); then
  F_MATMUL='sq128|fc3'; F_MLP='784-512-256-10'; F_GPT='L4-C128-H4-T64-B32/'; F_OVERHEAD='.'; ELEM_SIZES=(--sizes 1)
else
  F_MATMUL='.'; F_MLP='.'; F_GPT='.'; F_OVERHEAD='.'; ELEM_SIZES=()
fi
((LIBTORCH && !SMOKE)) && F_GPT='L4-C128-H4-T64-B32/|L6-C256-H8-T128-B16/'

install_libtorch() {
  dpkg-query -W -f='${Status}' libtorch-dev 2>/dev/null | grep -q "install ok installed" && return 0
  echo "installing libtorch-dev (Debian's libtorch, ~1 GiB with its dependencies)..."
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libtorch-dev >/dev/null
}

build() {  # build <dir> <cmake args...> -- <targets...>
  local dir="$1"; shift
  local args=()
  while [[ "$1" != -- ]]; do args+=("$1"); shift; done
  shift
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" >/dev/null
  ninja -C "$dir" -j"$JOBS" "$@" >/dev/null
}

run() {  # run <name> <binary> <args...>: every repetition in one process, randomly interleaved
  local name="$1" bin="$2"; shift 2
  [[ -x "$bin" ]] || { echo "run_benchmarks.sh: $bin is not built" >&2; exit 1; }
  echo
  echo "================ $name: $bin $* ================"
  "$bin" --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
    --benchmark_color=false \
    --benchmark_out="$OUT/$name.json" --benchmark_out_format=json "$@" 2>&1 | tee "$OUT/$name.txt"
}

machine() {
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(lscpu | grep -m1 -i 'family' | tr -s ' '), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- --libtorch: pairs of programs, alternated run by run, one table ----

pair() {  # pair <name> <minipipe binary> <libtorch binary> <args...>
  local name="$1" mp="$2" lt="$3"; shift 3
  local bin
  for bin in "$mp" "$lt"; do [[ -x "$bin" ]] || { echo "run_benchmarks.sh: $bin is not built" >&2; exit 1; }; done
  echo
  echo "================ $name: $(basename "$mp") and $(basename "$lt") $*, alternating, $REPS runs each ================"
  local r side
  for ((r = 1; r <= REPS; ++r)); do
    for side in minipipe libtorch; do
      bin="$mp"; [[ "$side" == libtorch ]] && bin="$lt"
      echo "-- run $r/$REPS: $side ($(basename "$bin")), load average $(cut -d' ' -f1-3 /proc/loadavg)"
      "$bin" --benchmark_repetitions=1 --benchmark_color=false --benchmark_out="$OUT/$name.$side.$r.csv" \
        --benchmark_out_format=csv "$@" >"$OUT/$name.$side.$r.txt" 2>&1 ||
        { cat "$OUT/$name.$side.$r.txt"; echo "run_benchmarks.sh: $bin failed" >&2; exit 1; }
      # The program's own table: what follows its console lines.
      awk '/^$/ { blank = 1 } blank' "$OUT/$name.$side.$r.txt" | tail -n +2 >"$OUT/$name.$side.$r.table"
    done
  done
  echo "tables of the last runs: $OUT/$name.{minipipe,libtorch}.$REPS.table"
}

# One table over every pair run: per benchmark and thread count the median wall time per
# iteration of each side, and ratio = libtorch / minipipe (above 1: minipipe is faster).
# Goals (issue 12): GPT >= 1.2, MLP >= 1.05, per-op overhead (minipipe <= 0.5x libtorch) >= 2.
paired_table() {
  local rows="$OUT/paired_rows.tsv"
  : >"$rows"
  local f side
  for f in "$OUT"/{overhead,mlp_step,gpt_step}.{minipipe,libtorch}.*.csv; do
    [[ -e "$f" ]] || continue
    side=minipipe; [[ "$f" == *.libtorch.* ]] && side=libtorch
    # Google Benchmark's CSV: context lines, then "name,iterations,real_time,cpu_time,time_unit,...".
    awk -F, -v side="$side" -v base="$(basename "$f" .csv)" '
      /^name,/ { body = 1; next }
      body && /^"/ { n = $1; gsub(/"/, "", n); printf "%s\t%s\t%s\t%s\n", side, n, $3, $5 }' "$f" >>"$rows"
  done
  # Order of first appearance in minipipe's runs; medians per (side, name).
  awk -F'\t' '$1 == "minipipe" && !($2 in seen) { seen[$2] = ++k; print k "\t" $2 }' "$rows" >"$OUT/paired_order.tsv"
  sort -t$'\t' -k1,1 -k2,2 -k3,3g "$rows" | awk -F'\t' '
    function flush() { if (cnt) printf "%s\t%s\t%.6g\t%s\n", key_side, key_name, (cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2), unit }
    $1 != key_side || $2 != key_name { flush(); key_side = $1; key_name = $2; cnt = 0 }
    { v[++cnt] = $3; unit = $4 }
    END { flush() }' >"$OUT/paired_medians.tsv"
  echo
  echo "================ minipipe beside libtorch: median wall time per iteration over $REPS alternating runs ================"
  machine
  echo "ratio = libtorch time / minipipe time: above 1, minipipe is faster. goal: issue 12's target for the row"
  echo "(GPT >= 1.2, MLP >= 1.05, per-op overhead: minipipe <= 0.5x libtorch's time, i.e. ratio >= 2)"
  echo
  awk -F'\t' '
    FILENAME ~ /order/ { order[$2] = $1; names[$1] = $2; n = ($1 > n ? $1 : n); next }
    { val[$1, $2] = $3; unit[$2] = $4 }
    END {
      printf "%-34s %3s %11s %11s %5s %7s %6s\n", "benchmark", "thr", "minipipe", "libtorch", "unit", "ratio", "goal"
      for (i = 1; i <= n; ++i) {
        name = names[i]
        if (!(("libtorch", name) in val)) continue
        row = name; thr = name
        sub(/\/threads:.*/, "", row); sub(/.*\/threads:/, "", thr); sub(/\/.*/, "", thr)
        mp = val["minipipe", name]; lt = val["libtorch", name]
        goal = row ~ /^gpt/ ? 1.2 : row ~ /^mlp/ ? 1.05 : 2.0
        ratio = lt / mp
        met = (ratio >= goal) ? "met" : "not met"
        printf "%-34s %3s %11.4g %11.4g %5s %7.3f %6.2f %s\n", row, thr, mp, lt, unit[name], ratio, goal, met
      }
    }' "$OUT/paired_order.tsv" "$OUT/paired_medians.tsv" | tee "$OUT/paired_table.txt"
}

# ---- build ----

mp_targets=()
if want matmul || want eigen; then mp_targets+=(bench_matmul); fi
want overhead && mp_targets+=(bench_overhead)
want elementwise && mp_targets+=(bench_elementwise)
want mlp && mp_targets+=(bench_mlp_step)
want gpt && mp_targets+=(bench_gpt)
if ((LIBTORCH)); then
  mp_targets=()
  want overhead && mp_targets+=(bench_overhead torch_overhead)
  want mlp && mp_targets+=(bench_mlp_step torch_mlp_step)
  want gpt && mp_targets+=(bench_gpt torch_gpt)
fi

if ((NO_BUILD)); then
  echo "using the programs already built in $BUILD_DIR"
elif ((LIBTORCH)); then
  install_libtorch
  echo "building (Release) in $BUILD_DIR with the libtorch twins (MINIPIPE_LIBTORCH=ON)..."
  build "$BUILD_DIR" -DMINIPIPE_BLAS=ON -DMINIPIPE_LIBTORCH=ON -- "${mp_targets[@]}"
else
  echo "building (Release) in $BUILD_DIR (MINIPIPE_BLAS=ON)$( ((SMOKE)) || echo " and build-bench-eigen/ (MINIPIPE_BLAS=OFF)")..."
  build "$BUILD_DIR" -DMINIPIPE_BLAS=ON -- "${mp_targets[@]}"
  if want eigen && ((!SMOKE)); then build "$ROOT/build-bench-eigen" -DMINIPIPE_BLAS=OFF -- bench_matmul; fi
fi
machine
B="$BUILD_DIR"

# ---- run ----

if ((LIBTORCH)); then
  rm -f "$OUT"/*.minipipe.*.csv "$OUT"/*.libtorch.*.csv
  if want overhead; then
    pair overhead "$B/bench_overhead" "$B/torch_overhead" --threads "$THREADS" --benchmark_min_time="$MIN_TIME" \
      --benchmark_filter="$F_OVERHEAD"
  fi
  if want mlp; then
    pair mlp_step "$B/bench_mlp_step" "$B/torch_mlp_step" --threads "$THREADS" --benchmark_min_time="$MIN_TIME" \
      --benchmark_filter="$F_MLP"
  fi
  if want gpt; then
    pair gpt_step "$B/bench_gpt" "$B/torch_gpt" --threads "$THREADS" --no-probe --benchmark_filter="$F_GPT"
  fi
  paired_table
  echo
  echo "done; load average now $(cut -d' ' -f1-3 /proc/loadavg). Results: $OUT/"
  exit 0
fi

if want matmul; then
  run matmul "$B/bench_matmul" --threads "$THREADS" --benchmark_min_time="$MIN_TIME" --benchmark_filter="$F_MATMUL" \
    $( ((SMOKE)) && echo --no-probe)
fi
if want eigen && ((!SMOKE)); then
  # Eigen's own GEMM against the same cblas_sgemm baseline; the MLP shapes and 1024^3 only.
  run matmul_eigen "$ROOT/build-bench-eigen/bench_matmul" --threads "$THREADS" --benchmark_min_time="$MIN_TIME" \
    --benchmark_filter='sq(512|1024)|fc'
fi
if want elementwise; then
  run elementwise "$B/bench_elementwise" --threads "$THREADS" ${ELEM_SIZES[@]+"${ELEM_SIZES[@]}"} \
    --benchmark_min_time="$(awk -v t="$MIN_TIME" 'BEGIN { print (t < 0.1 ? t : 0.1) }')"
fi
if want overhead; then
  run overhead "$B/bench_overhead" --threads "$THREADS" --benchmark_min_time="$MIN_TIME" --benchmark_filter="$F_OVERHEAD"
fi
if want mlp; then
  run mlp_step "$B/bench_mlp_step" --threads "$THREADS" --benchmark_min_time="$MIN_TIME" --benchmark_filter="$F_MLP"
fi
if want gpt; then
  run gpt_step "$B/bench_gpt" --threads "$THREADS" --benchmark_filter="$F_GPT" $( ((SMOKE)) && echo --no-probe)
fi
echo
echo "done; load average now $(cut -d' ' -f1-3 /proc/loadavg). Results: $OUT/"
