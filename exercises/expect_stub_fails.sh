#!/usr/bin/env bash
# ctest's check of a blank stub (exercises/CMakeLists.txt): runs an exercise's test program built
# with the stub as shipped and fails if the program passes or if any single test in it passes —
# a check that a blank stub passes grades nothing, so it is a defect of the kit, named here.
set -uo pipefail
bin="$1"
out="$("$bin" 2>&1)"
rc=$?
passed="$(grep -E '^\[       OK \]' <<<"$out" | sed -E 's/^\[       OK \] ([^ ]+).*/\1/')"
ran="$(grep -cE '^\[ RUN      \]' <<<"$out")"
if [ "$rc" -eq 0 ]; then
  echo "DEFECT: $(basename "$bin") passes with the blank stub; every module must fail until the student writes it"
  exit 1
fi
if [ -n "$passed" ]; then
  echo "DEFECT: these checks pass with the blank stub, so they grade nothing the student writes:"
  sed 's/^/  /' <<<"$passed"
  exit 1
fi
if ! grep -qE '^\[==========\] [0-9]+ tests? from .* ran\.' <<<"$out"; then
  echo "DEFECT: $(basename "$bin") did not finish (exit $rc: a crash or an abort?); a blank stub must fail each check, not stop the run:"
  tail -20 <<<"$out"
  exit 1
fi
if [ "$ran" -eq 0 ]; then
  echo "DEFECT: $(basename "$bin") ran no test (exit $rc); it should run every check and fail each one:"
  tail -20 <<<"$out"
  exit 1
fi
echo "ok: the blank stub fails all $ran checks of $(basename "$bin")"
