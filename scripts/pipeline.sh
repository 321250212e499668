#!/usr/bin/env bash
# Installs what is missing, builds, and runs every stage of minirlhf on one
# configuration, then prints a summary (also written to RUN/summary.md).
#
#   ./scripts/pipeline.sh [--config smoke|tiny|small] [--out runs/NAME] [--seed N] [--from STAGE] [--until STAGE]
#
# Stages, in order: bpe pretrain sft prefs train_rm ppo evaluate. --from STAGE
# starts there and reuses the outputs of the earlier stages in the run folder;
# --until STAGE stops after it. With MINIRLHF_BIN=DIR set, the executables
# already built in DIR are used and nothing is installed or built. With
# MINIRLHF_WRAP="valgrind -q ..." every stage runs under that command (and
# the peak memory recorded is then that of the wrapper's process).
#
# Each stage's folder gets log.txt, wall_s.txt (wall time, seconds) and
# peak_rss_kb.txt (peak resident memory, KiB, measured by peak_rss); the
# summary shows both for every stage.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/common.sh"

STAGES="bpe pretrain sft prefs train_rm ppo evaluate"
config=tiny; out=""; seed=1337; from=bpe; until=evaluate
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; } # the header comment
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="${2:?--config needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a value}"; shift 2 ;;
    --from) from="${2:?--from needs a value}"; shift 2 ;;
    --until) until="${2:?--until needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "pipeline.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$config" in
  smoke) vocab=512; pairs=128 ;;
  tiny) vocab=2048; pairs=16000 ;;
  small) vocab=4096; pairs=16000 ;;
  *) echo "pipeline.sh: --config must be smoke, tiny or small" >&2; exit 2 ;;
esac
for stage in "$from" "$until"; do
  case " $STAGES " in *" $stage "*) ;; *) echo "pipeline.sh: --from and --until take one of: $STAGES" >&2; exit 2 ;; esac
done
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "pipeline.sh: --seed must be a whole number" >&2; exit 2; }
out="${out:-$ROOT/runs/$config}"

bin=$(use_or_build_binaries)
data="$ROOT/data"; tok="$out/tokenizer.bin"
mkdir -p "$out"

# mib FILE: the size in KiB that FILE holds, in MiB with one decimal ("?" without FILE).
mib() { if [ -s "$1" ]; then awk '{ printf "%.1f", $1 / 1024; exit }' "$1"; else printf '?'; fi; }

# Each stage's folder in the run (train_rm writes the reward model to rm/).
folder() { case "$1" in bpe) echo bpe ;; train_rm) echo rm ;; evaluate) echo eval ;; *) echo "$1" ;; esac; }

# run_stage NAME COMMAND...: runs a stage unless it comes before --from,
# logging to RUN/FOLDER/log.txt and recording its wall time and peak memory.
started=0; finished=0
run_stage() {
  local name="$1" dir; shift
  dir="$out/$(folder "$name")"
  [ "$name" = "$from" ] && started=1
  [ "$finished" = 1 ] && return 1
  if [ "$started" = 0 ]; then echo "== $name: reusing $dir"; return 0; fi
  if [ ! -x "$bin/$name" ]; then echo "== $name: not built yet, so the pipeline stops here."; return 1; fi
  echo "== $name"
  mkdir -p "$dir"
  local t0=$SECONDS rc
  set +e
  "$bin/peak_rss" "$dir/peak_rss_kb.txt" ${MINIRLHF_WRAP:-} "$@" 2>&1 | tee "$dir/log.txt"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" != 0 ]; then echo "pipeline.sh: stage $name failed (exit $rc); see $dir/log.txt" >&2; exit "$rc"; fi
  echo "$((SECONDS - t0))" > "$dir/wall_s.txt"
  echo "pipeline.sh: $name: wall time $(cat "$dir/wall_s.txt") s, peak resident memory $(mib "$dir/peak_rss_kb.txt") MiB" \
    | tee -a "$dir/log.txt"
  [ "$name" = "$until" ] && finished=1
  return 0
}

# The pipeline owns its stage folders: each stage it runs starts afresh there
# (--force replaces the run files an earlier run or --from left).
run_all() {
  run_stage bpe "$bin/bpe" train --input "$data/fortunes.jsonl" --jsonl-field text --vocab "$vocab" --out "$tok" || return 0
  run_stage pretrain "$bin/pretrain" --config "$config" --seed "$seed" --tokenizer "$tok" \
    --data "$data/fortunes.jsonl" --out "$out/pretrain" --force || return 0
  run_stage sft "$bin/sft" --config "$config" --seed "$seed" --init "$out/pretrain/model.bin" --tokenizer "$tok" \
    --data "$data/sft.jsonl" --val "$data/sft_val.jsonl" --out "$out/sft" --force || return 0
  # Each pair's second response at temperature 0.7: more varied pairs (docs/annotator.md).
  run_stage prefs "$bin/prefs" --seed "$seed" --pairs "$pairs" --policy "$out/sft/model.bin" --tokenizer "$tok" \
    --prompts "$data/prompts_train.jsonl" --data-dir "$data" --temperature2 0.7 --out "$out/prefs" --force || return 0
  run_stage train_rm "$bin/train_rm" --config "$config" --seed "$seed" --init "$out/sft/model.bin" --tokenizer "$tok" \
    --pairs "$out/prefs/prefs.jsonl" --val "$out/prefs/prefs_val.jsonl" --out "$out/rm" --force || return 0
  run_stage ppo "$bin/ppo" --config "$config" --seed "$seed" --policy "$out/sft/model.bin" --rm "$out/rm/model.bin" \
    --tokenizer "$tok" --prompts "$data/prompts_train.jsonl" --eval-prompts "$data/prompts_eval.jsonl" \
    --data-dir "$data" --out "$out/ppo" --force || return 0
  run_stage evaluate "$bin/evaluate" --config "$config" --seed "$seed" --policy "$out/ppo/model.bin" \
    --ref "$out/sft/model.bin" --rm "$out/rm/model.bin" --tokenizer "$tok" --prompts "$data/prompts_eval.jsonl" \
    --data-dir "$data" --out "$out/eval" --force || return 0
}
run_all

# figure STAGE PATTERN: the last line of a stage's log that matches, without the program name.
figure() { grep -h "$2" "$out/$(folder "$1")/log.txt" 2>/dev/null | tail -1 | sed 's/^[a-z_]*: //'; }

# Training curves of every stage that ran, in one figure.
plot_curves() {
  local png="$out/training.png" m="set datafile separator ','; set key autotitle columnhead; set grid; set xlabel 'step'"
  [ -f "$out/pretrain/metrics.csv" ] || return 0
  local panels="set title 'pretrain'; plot '$out/pretrain/metrics.csv' using 1:4 with lines title 'loss', '' using 1:5 with linespoints title 'validation loss';"
  [ -f "$out/sft/metrics.csv" ] && panels="$panels set title 'sft'; plot '$out/sft/metrics.csv' using 1:4 with lines title 'loss', '' using 1:5 with linespoints title 'held-out response loss';"
  [ -f "$out/rm/metrics.csv" ] && panels="$panels set title 'reward model'; plot '$out/rm/metrics.csv' using 1:4 with lines title 'loss', '' using 1:8 with linespoints title 'held-out accuracy vs gold';"
  [ -f "$out/ppo/metrics.csv" ] && panels="$panels set title 'ppo'; plot '$out/ppo/metrics.csv' using 1:2 with lines title 'reward-model score', '' using 1:16 with lines title 'gold', '' using 1:4 with lines axes x1y2 title 'KL (right axis)'; "
  gnuplot -e "set terminal pngcairo size 1200,800; set output '$png'; $m; set y2tics; set multiplot layout 2,2; $panels unset multiplot" \
    && echo "$png"
}
plots=$(plot_curves || true)

{
  echo "# minirlhf run: $config config, seed $seed"
  echo
  echo "| stage | wall time (s) | peak memory (MiB) | result |"
  echo "| --- | --- | --- | --- |"
  for s in $STAGES; do
    wall="$out/$(folder "$s")/wall_s.txt"
    [ -f "$wall" ] || continue
    case "$s" in
      bpe) r=$(figure bpe "^wrote") ;;
      pretrain) r=$(figure pretrain "validation loss") ;;
      sft) r="$(figure sft "held-out response loss"); $(figure sft "end-token rate")" ;;
      prefs) r=$(figure prefs "label noise") ;;
      train_rm) r=$(figure train_rm "final:") ;;
      ppo) r="$(figure ppo "held-out gold score"); $(figure ppo "held-out reward-model score"); $(figure ppo "KL(policy")" ;;
      evaluate) r=$(figure evaluate "gold win rate") ;;
      *) r=$(tail -1 "$out/$(folder "$s")/log.txt") ;;
    esac
    echo "| $s | $(cat "$wall") | $(mib "$out/$(folder "$s")/peak_rss_kb.txt") | $r |"
  done
  [ -n "$plots" ] && printf '\n![training curves](training.png)\n'
} > "$out/summary.md"
echo
cat "$out/summary.md"
echo
echo "summary written to $out/summary.md"
