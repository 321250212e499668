#!/usr/bin/env bash
# Installs what is missing, builds, and runs every stage of minirlhf on one
# configuration, then prints a summary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/common.sh"

config=tiny
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    -h|--help) echo "usage: pipeline.sh [--config smoke|tiny|small]"; exit 0 ;;
    *) echo "pipeline.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

ensure_packages
build_project "$ROOT/build"
bin="$ROOT/build/bin"
echo "built: $(ls "$bin" | tr '\n' ' ')"
for stage in bpe pretrain sft prefs train_rm ppo evaluate; do
  if [ ! -x "$bin/$stage" ]; then
    echo "stage '$stage' is not built yet: the pipeline stops here."
    exit 0
  fi
done
