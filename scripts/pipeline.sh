#!/usr/bin/env bash
# Installs what is missing, builds, and runs every stage of minirlhf on one
# configuration, then prints a summary (also written to RUN/summary.md).
#
#   ./scripts/pipeline.sh [--config smoke|tiny|small] [--out runs/NAME] [--seed N] [--method ppo|dpo]
#                         [--from STAGE] [--until STAGE] [--mixed]
#
# Stages, in order: bpe pretrain sft prefs train_rm ppo evaluate. With
# --method dpo (default ppo) the policy is trained by dpo on the preference
# pairs instead of by ppo against the reward model (which is still trained,
# for the evaluation): bpe pretrain sft prefs train_rm dpo evaluate, and
# evaluate writes to RUN/eval_dpo, so one run folder can hold both methods'
# policies from the same SFT model and pairs (--method dpo --from dpo). --from STAGE
# starts there and reuses the outputs of the earlier stages in the run folder;
# --until STAGE stops after it. RUN/pipeline.txt records the seed and config
# each stage was made with; a --from whose earlier stages were made with
# another seed or config is refused (exit 2) unless --mixed is given, and the
# summary then shows each stage's seed and config. With MINIRLHF_BIN=DIR set, the executables
# already built in DIR are used and nothing is installed or built. With
# MINIRLHF_WRAP="valgrind -q ..." every stage runs under that command (and
# the peak memory recorded is then that of the wrapper's process).
#
# Each stage's folder gets log.txt, wall_s.txt (wall time, seconds) and
# peak_rss_kb.txt (peak resident memory, KiB, measured by peak_rss); the
# summary shows both for every stage.
#
# The pipeline stops at the first stage that does not finish: one that fails
# (exit 1) or stops before its last step (exit 3: Ctrl-C, SIGTERM), and prints
# the commands that resume that stage and continue the pipeline after it. It
# exits with that stage's status. Ctrl-C reaches the running stage, which
# saves a checkpoint; its log.txt is kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/common.sh"

config=tiny; out=""; seed=1337; from=bpe; until=evaluate; mixed=0; method=ppo
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; } # the header comment
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="${2:?--config needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a value}"; shift 2 ;;
    --method) method="${2:?--method needs a value}"; shift 2 ;;
    --from) from="${2:?--from needs a value}"; shift 2 ;;
    --until) until="${2:?--until needs a value}"; shift 2 ;;
    --mixed) mixed=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "pipeline.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$method" in
  ppo|dpo) STAGES="bpe pretrain sft prefs train_rm $method evaluate" ;;
  *) echo "pipeline.sh: --method must be ppo or dpo" >&2; exit 2 ;;
esac
case "$config" in
  smoke) vocab=512; pairs=128 ;;
  tiny) vocab=2048; pairs=16000 ;;
  small) vocab=4096; pairs=16000 ;;
  *) echo "pipeline.sh: --config must be smoke, tiny or small" >&2; exit 2 ;;
esac
for stage in "$from" "$until"; do
  case " $STAGES " in *" $stage "*) ;; *) echo "pipeline.sh: --from and --until take one of: $STAGES" >&2; exit 2 ;; esac
done
stage_index() { local i=0 s; for s in $STAGES; do [ "$s" = "$1" ] && { echo "$i"; return; }; i=$((i + 1)); done; }
if [ "$(stage_index "$from")" -gt "$(stage_index "$until")" ]; then
  echo "pipeline.sh: --from $from comes after --until $until: nothing to run" >&2; exit 2
fi
# The range the stages accept (pretrain's --seed 0..2147483647), checked before
# any stage runs rather than by the first stage that reads it.
if ! [[ "$seed" =~ ^0*([0-9]{1,10})$ ]] || [ "${BASH_REMATCH[1]}" -gt 2147483647 ]; then
  echo "pipeline.sh: --seed must be a whole number from 0 to 2147483647 (got '$seed')" >&2; exit 2
fi
seed=$((10#${BASH_REMATCH[1]}))
out="${out:-$ROOT/runs/$config}"
# A control character (a newline above all) in a path cannot be passed back
# on a command line to resume the run, nor read back from config.txt.
if [[ "$out" == *[[:cntrl:]]* ]]; then
  echo "pipeline.sh: --out contains a control character (a newline or tab?): choose a folder name without one" >&2
  exit 2
fi

# Each stage's folder in the run (train_rm writes the reward model to rm/;
# evaluate of a dpo policy writes to eval_dpo/, beside ppo's eval/).
eval_folder=eval; [ "$method" = dpo ] && eval_folder=eval_dpo
folder() { case "$1" in bpe) echo bpe ;; train_rm) echo rm ;; evaluate) echo "$eval_folder" ;; *) echo "$1" ;; esac; }

# made_with STAGE: "SEED CONFIG" the stage in the run folder was made with,
# from RUN/pipeline.txt ("STAGE seed N config NAME", written as the pipeline
# starts a stage) or else its config.txt; "?" for what is not recorded, "-"
# for bpe's seed (it has none), nothing for a stage with no record at all.
made_with() {
  local rec cfg s c
  rec=$(awk -v s="$1" '$1 == s && $2 == "seed" && $4 == "config" { r = $3 " " $5 } END { print r }' \
    "$out/pipeline.txt" 2>/dev/null || true)
  if [ -n "$rec" ]; then echo "$rec"; return 0; fi
  cfg="$out/$(folder "$1")/config.txt"
  [ -f "$cfg" ] || return 0
  s=$(sed -n 's/^seed = //p' "$cfg" | tail -1); c=$(sed -n 's/^config = //p' "$cfg" | tail -1)
  echo "${s:-?} ${c:-?}"
}

# differs "SEED CONFIG": 0 (true) when a recorded seed or config is not this run's.
differs() {
  local s c
  read -r s c <<< "$1"
  { [ -n "$s" ] && [ "$s" != "?" ] && [ "$s" != "-" ] && [ "$s" != "$seed" ]; } || { [ -n "$c" ] && [ "$c" != "?" ] && [ "$c" != "$config" ]; }
}

# The stages before --from are reused as they are: refused, before anything
# runs, when they were made with another seed or config (unless --mixed).
if [ "$mixed" = 0 ]; then
  for s in $STAGES; do
    [ "$s" = "$from" ] && break
    made=$(made_with "$s")
    if differs "$made"; then
      read -r made_seed made_config <<< "$made"
      made="seed $made_seed ($made_config config)"
      [ "$made_seed" = - ] && made="the $made_config config"
      echo "pipeline.sh: --from $from would reuse $s, made with $made, in a run of seed $seed ($config config); start from an earlier stage, or pass --mixed to reuse it anyway" >&2
      exit 2
    fi
  done
fi

bin=$(use_or_build_binaries)
data="$ROOT/data"; tok="$out/tokenizer.bin"
mkdir -p "$out"

# mib FILE: the size in KiB that FILE holds, in MiB with one decimal ("?" without FILE).
mib() { if [ -s "$1" ]; then awk '{ printf "%.1f", $1 / 1024; exit }' "$1"; else printf '?'; fi; }

# The stage after NAME in STAGES, or nothing after the last one.
next_stage() { local prev="" s; for s in $STAGES; do [ "$prev" = "$1" ] && { echo "$s"; return; }; prev="$s"; done; }

# stopped NAME DIR STATUS: says what to run to resume stage NAME, which did not
# finish, and to continue the pipeline after it, then exits with its status.
stopped() {
  local name="$1" dir="$2" rc="$3" next cont
  next=$(next_stage "$name")
  cont=$(printf '%q ' "$ROOT/scripts/pipeline.sh" --config "$config" --out "$out" --seed "$seed")
  [ "$method" = dpo ] && cont="$cont--method dpo "
  [ "$mixed" = 1 ] && cont="$cont--mixed "
  if [ "$rc" = 3 ] && [ -f "$dir/model.bin" ]; then
    echo "pipeline.sh: stage $name stopped before its last step (exit 3); its checkpoint is in $dir. Resume it with:" >&2
    echo "  $(printf '%q --resume %q' "$bin/$name" "$dir")" >&2
    if [ "$name" != "$until" ] && [ -n "$next" ]; then
      echo "then continue the pipeline with:" >&2
      echo "  $cont--from $next --until $until" >&2
    fi
  else
    echo "pipeline.sh: stage $name did not finish (exit $rc); see $dir/log.txt. Run it again with:" >&2
    echo "  $cont--from $name --until $until" >&2
  fi
  exit "$rc"
}

# Ctrl-C or SIGTERM reach the running stage too (the terminal signals the
# whole process group); the pipeline waits for it to save and exit, then
# stops() with its status instead of dying at once.
trap 'signalled=1' INT TERM
signalled=0

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
  record_stage "$name"
  local t0=$SECONDS rc
  set +e
  # tee ignores SIGINT and SIGTERM (an ignored signal stays ignored across
  # exec): on Ctrl-C it must outlive the stage, or the stage's next write
  # kills it with SIGPIPE before it saves, and log.txt loses its end.
  "$bin/peak_rss" "$dir/peak_rss_kb.txt" ${MINIRLHF_WRAP:-} "$@" 2>&1 | (trap '' INT TERM; exec tee "$dir/log.txt")
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" = 0 ] && [ "$signalled" = 1 ]; then rc=130; fi # a stage that finished anyway: still stop here
  if [ "$rc" != 0 ]; then stopped "$name" "$dir" "$rc"; fi
  echo "$((SECONDS - t0))" > "$dir/wall_s.txt"
  echo "pipeline.sh: $name: wall time $(cat "$dir/wall_s.txt") s, peak resident memory $(mib "$dir/peak_rss_kb.txt") MiB" \
    | tee -a "$dir/log.txt"
  [ "$name" = "$until" ] && finished=1
  return 0
}

# record_stage NAME: RUN/pipeline.txt says NAME is made with this seed and
# config (recorded as it starts: its folder is this run's from then on).
record_stage() {
  local file="$out/pipeline.txt" stage_seed="$seed"
  [ "$1" = bpe ] && stage_seed=- # the tokenizer depends on the config's vocabulary only
  { if [ -f "$file" ]; then awk -v s="$1" '$1 != s' "$file"; fi; echo "$1 seed $stage_seed config $config"; } > "$file.tmp"
  mv "$file.tmp" "$file"
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
  if [ "$method" = ppo ]; then
    run_stage ppo "$bin/ppo" --config "$config" --seed "$seed" --policy "$out/sft/model.bin" --rm "$out/rm/model.bin" \
      --tokenizer "$tok" --prompts "$data/prompts_train.jsonl" --eval-prompts "$data/prompts_eval.jsonl" \
      --data-dir "$data" --out "$out/ppo" --force || return 0
  else
    # The reward model only evaluates the policy (heldout.csv); dpo trains on the pairs.
    run_stage dpo "$bin/dpo" --config "$config" --seed "$seed" --init "$out/sft/model.bin" --rm "$out/rm/model.bin" \
      --tokenizer "$tok" --pairs "$out/prefs/prefs.jsonl" --val "$out/prefs/prefs_val.jsonl" \
      --eval-prompts "$data/prompts_eval.jsonl" --data-dir "$data" --out "$out/dpo" --force || return 0
  fi
  run_stage evaluate "$bin/evaluate" --config "$config" --seed "$seed" --policy "$out/$method/model.bin" \
    --ref "$out/sft/model.bin" --rm "$out/rm/model.bin" --tokenizer "$tok" --prompts "$data/prompts_eval.jsonl" \
    --data-dir "$data" --out "$out/$eval_folder" --dump "$out/$eval_folder/dump.jsonl" --force || return 0
}
run_all

# figure STAGE PATTERN: the last line of a stage's log that matches, without the program name.
figure() { grep -h "$2" "$out/$(folder "$1")/log.txt" 2>/dev/null | tail -1 | sed 's/^[a-z_]*: //'; }

# Training curves of every stage that ran, in one figure.
plot_curves() {
  [ -f "$out/pretrain/metrics.csv" ] || return 0
  has() { if [ -f "$out/$1/metrics.csv" ]; then echo 1; else echo 0; fi; }
  # The PPO panels: a dpo run's curves are in dpo/metrics.csv and dpo/heldout.csv.
  plot training "$out" "$(has sft)" "$(has rm)" "$([ "$method" = ppo ] && has ppo || echo 0)" && echo "$out/training.png"
}
plots=$(plot_curves || true)

# With stages made with other seeds or configs (--mixed), the summary says
# so and shows each stage's.
mixed_stages=0
for s in $STAGES; do
  [ -f "$out/$(folder "$s")/wall_s.txt" ] && differs "$(made_with "$s")" && mixed_stages=1
done
{
  if [ "$mixed_stages" = 1 ]; then
    echo "# minirlhf run: stages made with different seeds or configs (this pipeline: $config config, seed $seed)"
    echo
    echo "| stage | seed | config | wall time (s) | peak memory (MiB) | result |"
    echo "| --- | --- | --- | --- | --- | --- |"
  else
    echo "# minirlhf run: $config config, seed $seed"
    echo
    echo "| stage | wall time (s) | peak memory (MiB) | result |"
    echo "| --- | --- | --- | --- |"
  fi
  for s in $STAGES; do
    wall="$out/$(folder "$s")/wall_s.txt"
    [ -f "$wall" ] || continue
    made=""
    if [ "$mixed_stages" = 1 ]; then
      read -r made_seed made_config <<< "$(made_with "$s")"
      made="${made_seed:-?} | ${made_config:-?} | "
    fi
    case "$s" in
      bpe) r=$(figure bpe "^wrote") ;;
      pretrain) r=$(figure pretrain "validation loss") ;;
      sft) r="$(figure sft "held-out response loss"); $(figure sft "end-token rate")" ;;
      prefs) r=$(figure prefs "label noise") ;;
      train_rm) r=$(figure train_rm "final:") ;;
      ppo) r="$(figure ppo "held-out gold score"); $(figure ppo "held-out reward-model score"); $(figure ppo "KL(policy"); $(figure ppo "orders pairs")" ;;
      dpo) r="$(figure dpo "held-out pairs:"); $(figure dpo "held-out log-prob"); $(figure dpo "held-out gold score"); $(figure dpo "held-out reward-model score"); $(figure dpo "KL(policy")" ;;
      evaluate) r="$(figure evaluate "gold win rate"); $(figure evaluate "reward model agrees" | sed 's/^ *//; s/  */ /g') (policy, reference)" ;;
      *) r=$(tail -1 "$out/$(folder "$s")/log.txt") ;;
    esac
    echo "| $s | $made$(cat "$wall") | $(mib "$out/$(folder "$s")/peak_rss_kb.txt") | $r |"
  done
  [ -n "$plots" ] && printf '\n![training curves](training.png)\n'
} > "$out/summary.md"
echo
cat "$out/summary.md"
echo
echo "summary written to $out/summary.md"
