#!/usr/bin/env bash
# Training-step benchmark of the model (forward + backward + AdamW) on the
# shapes compared in BENCHMARKS.md: tiny (d=128 L=4 H=4 T=128, vocab 2048,
# batch 8x128) and small (d=384 L=6 H=6 T=256, vocab 4096, batch 4x256);
# then generation with the KV cache (batch 16, prompt 32, 64 new tokens).
# bench/compare.py runs the same against PyTorch.
#   bench/bench_model.sh [STEPS]     (build first: ./scripts/test.sh or cmake)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MINIRLHF_BIN:-$ROOT/build/bin}"
steps="${1:-30}"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads: ${OMP_NUM_THREADS:-all cores}; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-default}; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}"
"$bin/bench_model" --config tiny --vocab 2048 --batch 8 --steps "$steps"
"$bin/bench_model" --config small --vocab 4096 --batch 4 --steps "$steps"
"$bin/bench_model" --mode generate --config tiny --vocab 2048 --batch 16 --prompt 32 --new 64 --steps 5
"$bin/bench_model" --mode generate --config small --vocab 4096 --batch 16 --prompt 32 --new 64 --steps 5
