#!/usr/bin/env bash
# Builds prepare_data and regenerates the shipped data files in data/ from
# Debian's fortunes package; prints the per-category counts of data/README.md.
#   ./scripts/prepare_data.sh [prepare_data options, e.g. --seed 1]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/common.sh"

for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; echo ;;
  esac
done
ensure_packages fortunes
# Only prepare_data is built: the data must not wait for every other stage.
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build" --target prepare_data -j "$(nproc)" >/dev/null
"$ROOT/build/bin/prepare_data" --out-dir "$ROOT/data" "$@"
