#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through CTest.
#   ./scripts/test.sh             Release build in build/
#   ./scripts/test.sh --sanitize  AddressSanitizer + UBSan build in build-sanitize/
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/common.sh"

build="$ROOT/build"; cmake_args=()
for arg in "$@"; do
  case "$arg" in
    --sanitize) build="$ROOT/build-sanitize"; cmake_args+=(-DMINIRLHF_SANITIZE=ON) ;;
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

ensure_packages
build_project "$build" "${cmake_args[@]}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Two tests at a time on one thread each: two OpenMP teams of two on two cores
# spin at every barrier waiting for a descheduled thread, and run many times slower.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cd "$build"
ctest --output-on-failure -j "$(nproc)" --timeout 900
