#!/usr/bin/env bash
# Grades one exercise module: builds the student's stub.cpp (or FILE) into the project in place of
# the reference solution, runs that module's tests, and prints which checks pass, which fail, and
# why. Usage:
#   exercises/check.sh N [FILE]     N: the module, 1..6; FILE: grade this file instead of the stub
# The build goes to build/ (configured here if it is not yet; MINIPIPE_BUILD_DIR=dir to use another);
# only the module's test program is built, the library once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
usage() { echo "usage: exercises/check.sh N [FILE]   (N: 1..6, the module to grade)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
[[ "$1" =~ ^0?[1-6]$ ]] || usage
n="$(printf '%02d' "$((10#$1))")"
dir="$(cd "$root/exercises" && ls -d ${n}_*/ | head -1)"
dir="${dir%/}"
build="${MINIPIPE_BUILD_DIR:-$root/build}"
[[ "$build" = /* ]] || build="$PWD/$build"
file=""
if [ $# -eq 2 ]; then
  [ -f "$2" ] || { echo "check.sh: no such file: $2" >&2; exit 2; }
  file="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
fi

# Configure when needed: a fresh build/, or a change of the file being graded.
cached() { grep -E "^$1:" "$build/CMakeCache.txt" 2>/dev/null | sed 's/^[^=]*=//'; }
configure=()
[ -f "$build/build.ninja" ] || configure=(-G Ninja -DCMAKE_BUILD_TYPE=Release)
if [ -n "$file" ]; then
  [ "$(cached MINIPIPE_EXERCISE_FILE)" = "$file" ] && [ "$(cached MINIPIPE_EXERCISE_MODULE)" = "$n" ] ||
    configure+=(-DMINIPIPE_EXERCISE_FILE="$file" -DMINIPIPE_EXERCISE_MODULE="$n")
elif [ -n "$(cached MINIPIPE_EXERCISE_FILE)" ]; then
  configure+=(-DMINIPIPE_EXERCISE_FILE= -DMINIPIPE_EXERCISE_MODULE=)
fi
[ "$(cached MINIPIPE_EXERCISES)" = "OFF" ] && configure+=(-DMINIPIPE_EXERCISES=ON)
if [ ${#configure[@]} -gt 0 ] || [ ! -f "$build/build.ninja" ]; then
  echo "== configuring $build"
  cmake -S "$root" -B "$build" "${configure[@]}" >/dev/null
fi

if [ -n "$file" ]; then target="test_exercise_${n}_file"; graded="$file"
else target="test_exercise_${n}_stub"; graded="$root/exercises/$dir/stub.cpp"; fi
echo "== building module $((10#$n)) ($dir) with ${graded#$root/}"
[ -f "$build/libminipipe.a" ] || echo "   (the first time, this builds the minipipe library too: a few minutes)"
set +e
out="$(cmake --build "$build" --target "$target" -j "$(nproc)" 2>&1)"
st=$?
set -e
if [ "$st" -ne 0 ]; then
  # The compiler's errors, without ninja's command lines.
  grep -vE '^\[[0-9]+/[0-9]+\]|^FAILED: |^ninja: ' <<<"$out" | grep -vE '^/usr/bin/c\+\+ |^\S*g\+\+ ' | head -60 || true
  echo
  echo "RESULT: module $((10#$n)) does not compile: fix the errors above (each starts with its file and line)"
  exit 1
fi

echo "== running module $((10#$n))'s checks"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive timeout 300 "$build/exercises/$target" --gtest_color=no >"$log" 2>&1
rc=$?
set -e
# Each failed check's messages (gtest prints them between RUN and FAILED), then the list.
awk '
  /^\[ RUN      \]/ { name = $4; body = ""; next }
  /^\[       OK \]/ { name = ""; next }
  /^\[  FAILED  \]/ && name != "" {
    printf "\n---- FAIL %s\n%s", name, body; name = ""; next }
  name != "" { body = body $0 "\n" }
' "$log"
echo
echo "== module $((10#$n)): checks"
pass=$(grep -cE '^\[       OK \]' "$log" || true)
fail=0
while read -r line; do
  case "$line" in
    "[       OK ] "*) echo "  PASS  $(awk '{print $4}' <<<"$line")" ;;
    "[  FAILED  ] "*" ms)") echo "  FAIL  $(awk '{print $4}' <<<"$line")"; fail=$((fail + 1)) ;;
  esac
done <"$log"
if [ "$rc" -eq 124 ]; then
  echo "  TIMEOUT: the checks ran for more than 300 s and were stopped (a loop that never ends?)"
elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
  echo "  CRASH: the test program stopped (exit $rc) before finishing; its last lines:"
  tail -15 "$log" | sed 's/^/    /'
fi
echo
if [ "$rc" -eq 0 ]; then
  echo "RESULT: module $((10#$n)) passes: all $pass checks"
else
  echo "RESULT: module $((10#$n)): $pass checks pass, $fail fail — the reasons are above each FAIL"
  exit 1
fi
