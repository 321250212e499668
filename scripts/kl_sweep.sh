#!/usr/bin/env bash
# Compares KL coefficients: runs PPO once per beta from the same SFT model and
# reward model with the same seed, evaluates each, and writes sweep.csv and
# PNG plots (gnuplot) into the output folder.
#
#   ./scripts/kl_sweep.sh [--config smoke|tiny|small] [--run runs/CONFIG] [--out DIR] [--seed N] --betas 0,0.01,0.03,0.1,0.3
#
# The SFT and reward models come from the pipeline run in --run; if it has no
# reward model yet, the pipeline is run there up to train_rm first. With
# MINIRLHF_BIN=DIR set, the executables already built in DIR are used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/common.sh"

config=tiny; run=""; out=""; seed=1337; betas=""
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; } # the header comment
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="${2:?--config needs a value}"; shift 2 ;;
    --run) run="${2:?--run needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a value}"; shift 2 ;;
    --betas) betas="${2:?--betas needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "kl_sweep.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$betas" ] || { echo "kl_sweep.sh: --betas is required, e.g. --betas 0,0.01,0.1" >&2; exit 2; }
IFS=, read -r -a beta_list <<< "$betas"
for b in "${beta_list[@]}"; do
  [[ "$b" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "kl_sweep.sh: '$b' in --betas is not a number" >&2; exit 2; }
done
# As pipeline.sh: the seed range the stages accept, checked before anything runs.
if ! [[ "$seed" =~ ^0*([0-9]{1,10})$ ]] || [ "${BASH_REMATCH[1]}" -gt 2147483647 ]; then
  echo "kl_sweep.sh: --seed must be a whole number from 0 to 2147483647 (got '$seed')" >&2; exit 2
fi
seed=$((10#${BASH_REMATCH[1]}))
run="${run:-$ROOT/runs/$config}"; out="${out:-$run/sweep}"
# As pipeline.sh: a control character in a path cannot be given back on a command line.
if [[ "$run$out" == *[[:cntrl:]]* ]]; then
  echo "kl_sweep.sh: --run or --out contains a control character (a newline or tab?): choose a folder name without one" >&2
  exit 2
fi

if [ ! -f "$run/rm/model.bin" ]; then
  "$ROOT/scripts/pipeline.sh" --config "$config" --seed "$seed" --out "$run" --until train_rm
fi
bin=$(use_or_build_binaries)
data="$ROOT/data"
mkdir -p "$out"

# stage_failed STATUS DIR: a ppo run that did not finish ends the sweep with
# its status; one stopped before its last step (exit 3: Ctrl-C, SIGTERM) says
# how to finish it.
stage_failed() {
  cat "$2/log.txt"
  if [ "$1" = 3 ]; then
    printf 'kl_sweep.sh: ppo in %q stopped before its last step; finish it with\n  %q --resume %q\n' "$2" "$bin/ppo" "$2" >&2
    echo "kl_sweep.sh: (running the sweep again starts every beta afresh)" >&2
  else
    echo "kl_sweep.sh: ppo in $2 failed (exit $1); see $2/log.txt" >&2
  fi
  exit "$1"
}

csv="$out/sweep.csv"
echo "beta,kl,kl_k3,gold,gold_se,rm_score,rm_score_se,ref_gold,ref_rm_score,gold_win_rate,mean_length,end_rate" > "$csv.tmp"
for b in "${beta_list[@]}"; do
  dir="$out/beta_$b"
  echo "== beta $b"
  mkdir -p "$dir/eval"
  # The sweep owns beta_B/: a second sweep replaces its runs (--force).
  "$bin/ppo" --config "$config" --seed "$seed" --kl-coef "$b" --policy "$run/sft/model.bin" --rm "$run/rm/model.bin" \
    --tokenizer "$run/tokenizer.bin" --prompts "$data/prompts_train.jsonl" --eval-prompts "$data/prompts_eval.jsonl" \
    --data-dir "$data" --out "$dir" --force > "$dir/log.txt" 2>&1 || stage_failed $? "$dir"
  grep "^ppo: held-out" "$dir/log.txt"
  "$bin/evaluate" --config "$config" --seed "$seed" --policy "$dir/model.bin" --ref "$run/sft/model.bin" \
    --rm "$run/rm/model.bin" --tokenizer "$run/tokenizer.bin" --prompts "$data/prompts_eval.jsonl" \
    --data-dir "$data" --out "$dir/eval" --force > "$dir/eval/log.txt" 2>&1 \
    || { rc=$?; cat "$dir/eval/log.txt"; echo "kl_sweep.sh: evaluate in $dir/eval failed (exit $rc)" >&2; exit "$rc"; }
  # One row of sweep.csv from eval.json (cJSON writes one field per line).
  awk -v beta="$b" -F'[:,]' '
    /"policy":/ {s="p"} /"reference":/ {s="r"}
    { gsub(/[ \t"]/, "", $1); gsub(/[ \t]/, "", $2) }
    s=="p" && $1!="" { p[$1]=$2 } s=="r" && $1!="" { r[$1]=$2 } /gold_win_rate/ { w=$2 }
    END { printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", beta, p["kl"], p["kl_k3"], p["gold"], p["gold_se"],
          p["rm_score"], p["rm_score_se"], r["gold"], r["rm_score"], w, p["mean_length"], p["end_rate"] }' \
    "$dir/eval/eval.json" >> "$csv.tmp"
done
mv "$csv.tmp" "$csv"

# Plots: the trade-off (gold and proxy score against KL: over-optimisation
# shows as the proxy rising while gold stalls or falls) and each beta's
# training curves (scripts/plot.gp).
plot tradeoff "$out"
plot steps "$out" reward_over_steps score "reward-model score of rollouts (mean, normalised)" "${beta_list[*]}"
plot steps "$out" kl_over_steps kl "KL to reference (nats per response, k1)" "${beta_list[*]}"
plot steps "$out" gold_over_steps gold "gold score of rollouts (mean)" "${beta_list[*]}"

# The table for the terminal: rounded, each score with its standard error as
# README shows them; sweep.csv keeps the exact values.
echo
awk -F, '
  # pad(s, w): s right-aligned in w columns; "±" takes one column but two
  # bytes, and some awks count bytes.
  function pad(s, w,   t) { t = s; gsub(/±/, "+", t); while (length(t) < w) { t = " " t; s = " " s }; return s }
  function line(a, b, c, d, e, f, g,   s) {
    s = sprintf("%-15s%s%s%s%s%s%s", a, pad(b, 10), pad(c, 17), pad(d, 21), pad(e, 15), pad(f, 13), pad(g, 10))
    sub(/ +$/, "", s); print s
  }
  BEGIN { line("beta", "KL (nats)", "gold score", "reward-model score", "gold win rate", "mean length", "end rate") }
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  {
    line($col["beta"], sprintf("%.3f", $col["kl"]), sprintf("%.3f ± %.3f", $col["gold"], $col["gold_se"]),
      sprintf("%.3f ± %.3f", $col["rm_score"], $col["rm_score_se"]), sprintf("%.1f%%", 100 * $col["gold_win_rate"]),
      sprintf("%.1f", $col["mean_length"]), sprintf("%.1f%%", 100 * $col["end_rate"]))
    ref_gold = $col["ref_gold"]; ref_rm = $col["ref_rm_score"]
  }
  END { line("SFT reference", "0", sprintf("%.3f", ref_gold), sprintf("%.3f", ref_rm), "", "", "") }' "$csv"
echo
echo "wrote $csv and $out/{score_vs_kl,reward_over_steps,kl_over_steps,gold_over_steps}.png"
