#!/usr/bin/env bash
# Fuzzes the checkpoint loader, the tokenizer-file parser, BPE encoding of
# arbitrary bytes, every JSONL reader, the config.txt reader and the
# training-state reader with libFuzzer (clang, ASan, UBSan).
#
#   ./scripts/fuzz.sh SECONDS [TARGET...]
#
# Runs each target for SECONDS, two at a time, starting from the seeds in
# tests/fuzz/corpus/TARGET (copied into build-fuzz/corpus/, which keeps what
# the fuzzer adds). Prints executions, coverage and any crash per target; a
# crash input is kept as build-fuzz/crash-TARGET-* and the script exits 1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/common.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && { usage; exit 0; }
secs="${1:?usage: fuzz.sh SECONDS [TARGET...] (see --help)}"; shift
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number" >&2; exit 2; }
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(fuzz_checkpoint fuzz_tokenizer_file fuzz_bpe_encode fuzz_jsonl fuzz_config fuzz_trainstate)

ensure_packages clang libclang-rt-14-dev
build="$ROOT/build-fuzz"
CC=clang cmake -S "$ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMINIRLHF_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null
export MINIRLHF_ROOT="$ROOT" ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1"

fuzz_one() {
  local t="$1" corpus="$build/corpus/$1"
  mkdir -p "$corpus"
  cp -n "$ROOT/tests/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null || true
  "$build/fuzz/$t" -max_total_time="$secs" -max_len=65536 -artifact_prefix="$build/crash-$t-" \
    -print_final_stats=1 "$corpus" > "$build/$t.log" 2>&1
}
status=0; running=0
for t in "${targets[@]}"; do
  fuzz_one "$t" & running=$((running + 1))
  if [ "$running" -ge "$(nproc)" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true
for t in "${targets[@]}"; do
  execs=$(grep -h "stat::number_of_executed_units" "$build/$t.log" | awk '{print $2}')
  cov=$(grep -hoE "cov: [0-9]+" "$build/$t.log" | tail -1)
  crashes=$(find "$build" -maxdepth 1 -name "crash-$t-*" | wc -l)
  echo "$t: ${execs:-?} executions, ${cov:-cov: ?}, $crashes crash(es) (log: $build/$t.log)"
  [ "$crashes" = 0 ] || status=1
done
exit "$status"
