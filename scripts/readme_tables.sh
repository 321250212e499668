#!/usr/bin/env bash
# Regenerates the README's figures that come from one pipeline run: the run
# table (summary.md's) with the commit and command that made it, and the
# stage-by-stage figures with evaluate's output, each between its
# "<!-- readme_tables:NAME begin -->" and "<!-- readme_tables:NAME end -->"
# lines. The prose outside those lines is left as it is.
#
#   scripts/readme_tables.sh RUN_DIR [--commit SHA] [--check] [--readme FILE]
#
# RUN_DIR is a whole pipeline run of one seed and config (runs/tiny). The
# commit is --commit's (the one the run was made at); without it, README's
# own with --check, else the checkout's HEAD. Without --check README.md (or
# --readme FILE) is rewritten in place, atomically; with --check nothing is
# written, and the script prints a diff and exits 1 when README differs from
# what RUN_DIR gives. Exit statuses: 0 done (or README up to date), 1 a file
# missing or not as expected (or, with --check, README out of date), 2 a
# usage error.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG=readme_tables.sh
STAGES="bpe pretrain sft prefs train_rm ppo evaluate"
BLOCKS="run-table stages"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; } # the header comment
usage_error() { echo "$PROG: $* (see --help)" >&2; exit 2; }
fail() { echo "$PROG: $*" >&2; exit 1; }

run=""; commit=""; check=0; readme="$ROOT/README.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --commit) [ $# -ge 2 ] || usage_error "--commit needs a value"; commit="$2"; shift 2 ;;
    --readme) [ $# -ge 2 ] || usage_error "--readme needs a value"; readme="$2"; shift 2 ;;
    --check) check=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage_error "unknown option '$1'" ;;
    *) [ -z "$run" ] || usage_error "one run folder only (got '$run' and '$1')"; run="$1"; shift ;;
  esac
done
[ -n "$run" ] || usage_error "RUN_DIR is required"
[ -d "$run" ] || fail "$run: no such folder"
[ -f "$readme" ] || fail "$readme: no such file"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/readme_tables.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

folder() { case "$1" in train_rm) echo rm ;; evaluate) echo eval ;; *) echo "$1" ;; esac; }
need() { [ -f "$run/$1" ] || fail "$run/$1: no such file (is $run a whole pipeline run?)"; }

for s in $STAGES; do need "$(folder "$s")/log.txt"; done
need summary.md; need pretrain/config.txt; need ppo/config.txt; need pretrain/samples.txt; need ppo/heldout.csv

# The commit the figures are said to come from, as 7 hex digits.
is_git() { git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; }
told=1 # 0: the commit README names (not said again)
if [ -z "$commit" ] && [ "$check" = 1 ]; then
  # --check compares figures: the commit README names is the drift test's business.
  commit=$(awk '/^<!-- readme_tables:run-table begin/ { on = 1 } on && match($0, /commit `[0-9a-f]+`/) {
                  print substr($0, RSTART + 8, RLENGTH - 9); exit }' "$readme")
  told=0
fi
if [ -z "$commit" ]; then
  is_git || usage_error "not a git checkout: give the run's commit with --commit"
  commit=HEAD
  echo "$PROG: no --commit: saying the run was made at this checkout's HEAD" >&2
fi
if is_git && sha=$(git -C "$ROOT" rev-parse -q --verify "$commit^{commit}" 2>/dev/null); then
  commit=${sha:0:7}
elif [[ "$commit" =~ ^[0-9a-f]{7,40}$ ]]; then
  [ "$told" = 0 ] || echo "$PROG: commit $commit is not in this checkout's history; written as given" >&2
  commit=${commit:0:7}
else
  usage_error "--commit '$commit' is not a commit of this repository"
fi

# The run's config and seed, from summary.md's title; a mixed run is refused.
read -r config seed <<< "$(sed -n '1s/^# minirlhf run: \([a-z]*\) config, seed \([0-9]*\)$/\1 \2/p' "$run/summary.md")"
[ -n "${seed:-}" ] || fail "$run/summary.md:1: not the title of a run of one config and seed (a --mixed run?)"
command="./scripts/pipeline.sh"
# pipeline.sh's defaults (tiny, 1337) are left out of the command shown.
[ "$config" = tiny ] || command="$command --config $config"
[ "$seed" = 1337 ] || command="$command --seed $seed"

# --- the blocks: each prints its lines from the files of $run ---

# The last line of a stage's log that contains TEXT, without "prog: ".
logline() { grep -hF -- "$2" "$run/$(folder "$1")/log.txt" | tail -1 | sed 's/^[a-z_]*: //'; }
# A setting of a stage's config.txt.
setting() { sed -n "s/^$2 = //p" "$run/$1/config.txt" | tail -1; }
# expect STAGE TEXT REGEX: BASH_REMATCH from the log line with TEXT, or fail.
expect() {
  local line
  line=$(logline "$1" "$2")
  [[ "$line" =~ $3 ]] || fail "$run/$(folder "$1")/log.txt: no line with '$2' of the form expected (pipeline.sh of another version?)"
}
# 16000 -> 16,000
group() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<< "$1"; }

# Each bullet (a line of stdin) wrapped at 78 columns, continued with two
# spaces of indent; never inside a `code span`, whose spaces are kept.
wrap_bullets() {
  awk '{
    n = 0; word = ""; code = 0
    for (i = 1; i <= length($0); i++) {
      c = substr($0, i, 1)
      if (c == "`") code = !code
      if (c == " " && !code) { if (word != "") w[++n] = word; word = "" } else word = word c
    }
    if (word != "") w[++n] = word
    line = w[1]
    for (k = 2; k <= n; k++) {
      if (length(line) + 1 + length(w[k]) > 78) { print line; line = "  " w[k] } else line = line " " w[k]
    }
    print line
  }'
}

run_table_block() {
  local threads abs
  threads=$(for d in pretrain sft prefs rm ppo; do [ -f "$run/$d/config.txt" ] && setting "$d" threads; done | sort -un | paste -sd/)
  abs=$(cd "$run" && pwd -P)
  awk -v stages="$STAGES" -v abs="$abs" -v logical="$(cd "$run" && pwd)" -v given="${run%/}" -v shown="runs/$config" \
      -v file="$run/summary.md" -v command="$command" -v config="$config" -v seed="$seed" -v threads="$threads" \
      -v commit="$commit" '
    function unprefix(s, p,    i) { # each "p/" in s written "shown/"
      while (p != "" && (i = index(s, p "/")) > 0) s = substr(s, 1, i - 1) shown "/" substr(s, i + length(p) + 1)
      return s
    }
    NR == 3 || NR == 4 { head = head $0 "\n"; next }
    /^\| / {
      row = substr($0, 3); sub(/ \|$/, "", row)
      for (k = 1; k <= 3; k++) { i = index(row, " | "); cell[k] = substr(row, 1, i - 1); row = substr(row, i + 3) }
      # A "|" in a result (KL(policy || reference)) would end the table cell.
      gsub(/\\\|/, "|", row); gsub(/\|/, "\\|", row)
      row = unprefix(unprefix(unprefix(row, abs), logical), given)
      rows = rows "| " cell[1] " | " cell[2] " | " cell[3] " | " row " |\n"
      seen[cell[1]] = 1; total += cell[2]
    }
    END {
      n = split(stages, s, " ")
      for (k = 1; k <= n; k++) if (!seen[s[k]]) { printf "%s: no row for stage %s\n", file, s[k] > "/dev/stderr"; exit 1 }
      printf "At commit `%s`, `%s` (the `%s` config, seed %s, %s threads); the figures are that run'"'"'s `summary.md`: wall times in seconds, %d s in all; peak memory is each stage'"'"'s maximum resident set.\n\n", commit, command, config, seed, threads, total
      printf "%s%s\n", head, rows
    }' "$run/summary.md" > "$tmp/table" || fail "$run/summary.md: not a whole run's summary"
  head -1 "$tmp/table" | wrap_bullets
  tail -n +2 "$tmp/table"
}

# The first sample of pretrain's last step (no backtick, to sit in a code span), cut to about 60 characters.
pretrain_sample() {
  awk '/^== step / { n++ } { line[n] = line[n] "\n" $0 } END { print line[n] }' "$run/pretrain/samples.txt" |
    awk '!/^== / && NF && !/`/ { s = $0; if (length(s) > 60) { s = substr(s, 1, 60); sub(/ [^ ]*$/, "", s); s = s " ..." } print s; exit }'
}

# One line per bullet, wrapped by stages_block.
pretrain_bullet() {
  local params context
  expect pretrain "parameters," ' ([0-9]+) parameters'
  params=$(awk -v n="${BASH_REMATCH[1]}" 'BEGIN { if (n >= 1e6) printf "%.2fM", n / 1e6; else printf "%.1fk", n / 1e3 }')
  expect prefs "(context " '\(context ([0-9]+) tokens\)'; context=${BASH_REMATCH[1]}
  expect pretrain "done in" 'validation loss ([0-9.]+) nats/token, unigram entropy ([0-9.]+)'
  echo "- **pretrain** ($params parameters, $(group "$(setting pretrain steps)") steps of $(setting pretrain batch)" \
    "x $context tokens): validation loss ${BASH_REMATCH[1]} nats/token against ${BASH_REMATCH[2]} for a model that" \
    "only knows token frequencies (the unigram entropy of the validation tokens), and samples such as" \
    "\`$(pretrain_sample)\` (the first of its last step in \`samples.txt\`)."
}

sft_bullet() {
  local loss
  expect sft "held-out response loss" 'loss ([0-9.]+) nats/token \(pretrained model: ([0-9.]+)\)'
  loss="goes from ${BASH_REMATCH[2]} to ${BASH_REMATCH[1]} nats/token"
  expect sft "end-token rate" 'rate ([0-9.]+%) of ([0-9]+) held-out prompts at temperature ([0-9.]+) \(pretrained model: ([0-9.]+%)\)'
  echo "- **sft**: the loss on held-out responses $loss, and the share of the ${BASH_REMATCH[2]} held-out" \
    "prompts answered with one response that ends with the end token within the context goes from" \
    "${BASH_REMATCH[4]} (the pretrained model) to ${BASH_REMATCH[1]} (temperature ${BASH_REMATCH[3]})."
}

prefs_bullet() {
  local pairs ties
  expect prefs "pairs from" '([0-9]+) pairs from .*temperatures ([0-9.]+) and ([0-9.]+)'
  pairs="$(group "${BASH_REMATCH[1]}") pairs from the SFT model, the first response of each at temperature ${BASH_REMATCH[2]} and the second at ${BASH_REMATCH[3]}"
  expect prefs "with equal gold scores" '([0-9]+) pairs with equal gold scores (resampled|kept)'
  ties="$(group "${BASH_REMATCH[1]}") draws whose two responses scored the same were sampled again"
  [ "${BASH_REMATCH[2]}" = kept ] && ties="$(group "${BASH_REMATCH[1]}") pairs whose two responses score the same were kept"
  expect prefs "label noise" 'label noise ([0-9.]+%) .*; tau ([0-9.]+)\)'
  echo "- **prefs**: $pairs; $ties; ${BASH_REMATCH[1]} of the pairs whose responses score differently are" \
    "labelled against the gold order (tau ${BASH_REMATCH[2]}; docs/annotator.md compares this with human labellers)."
}

train_rm_bullet() {
  expect train_rm "final:" ', ([0-9.]+%) against the gold ordering \(([0-9]+) pairs; labels disagree with gold on ([0-9.]+%)\)'
  echo "- **train_rm**: the reward model ranks ${BASH_REMATCH[1]} of the $(group "${BASH_REMATCH[2]}") held-out" \
    "pairs as the gold function does (chance is 50%), although the labels of those pairs disagree with gold" \
    "${BASH_REMATCH[3]} of the time."
}

ppo_bullet() {
  local beta how gold rm
  beta="β = $(setting ppo kl-coef)"
  [ "$(setting ppo target-kl)" = 0 ] || beta="adaptive β, target KL $(setting ppo target-kl)"
  expect ppo "evaluating on" 'evaluating on ([0-9]+) held-out prompts, ([^(]*) \((seed [0-9]+)'
  how="${BASH_REMATCH[1]} held-out prompts (${BASH_REMATCH[2]}, ${BASH_REMATCH[3]})"
  expect ppo "held-out gold score" 'gold score ([-0-9.]+ ± [0-9.]+) \(reference ([-0-9.]+ ± [0-9.]+)\)'
  gold="goes from ${BASH_REMATCH[2]} (the SFT reference) to ${BASH_REMATCH[1]}"
  expect ppo "held-out reward-model score" 'model score ([-0-9.]+) ± [0-9.]+ \(reference ([-0-9.]+) ± [0-9.]+\)'
  rm="from ${BASH_REMATCH[2]} to ${BASH_REMATCH[1]}"
  expect ppo "KL(policy" '\|\| reference\) ([-0-9.]+) ± ([0-9.]+) nats per response'
  kl="${BASH_REMATCH[1]} ± ${BASH_REMATCH[2]}"
  expect ppo "orders pairs" 'as gold does ([0-9.]+%) ± ([0-9.]+) of the time \(the reference.s: ([0-9.]+%) ± ([0-9.]+)\)'
  echo "- **ppo** ($(group "$(setting ppo steps)") iterations of $(setting ppo batch) rollouts, $beta): on $how" \
    "the gold score of the policy's responses $gold, the reward-model score $rm, at a KL of $kl" \
    "nats per response (full vocabulary). Of two responses to one held-out prompt, the reward model orders" \
    "the SFT reference's as gold does ${BASH_REMATCH[3]} ± ${BASH_REMATCH[4]} of the time and the policy's" \
    "${BASH_REMATCH[1]} ± ${BASH_REMATCH[2]} (pairs whose gold differs; ± one standard error across prompts)." \
    "Along training (\`ppo/heldout.csv\`, the same held-out sample every $(setting ppo eval-every) iterations):"
}

# ppo's held-out evaluations along training, one table row per heldout.csv row.
heldout_table() {
  awk -F, -v file="$run/ppo/heldout.csv" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
              split("step gold gold_se rm_score rm_score_se kl_full rm_gold_agreement rm_gold_agreement_se", need, " ")
              for (k in need) if (!(need[k] in col)) { printf "%s: no column %s\n", file, need[k] > "/dev/stderr"; exit 1 }
              print "| iteration | gold score | reward-model score | KL (nats per response) | reward model agrees with gold |"
              print "| --- | --- | --- | --- | --- |"; next }
    { printf "| %d | %.3f ± %.3f | %.3f ± %.3f | %.3f | %.1f%% ± %.1f |\n", $col["step"], $col["gold"], $col["gold_se"],
             $col["rm_score"], $col["rm_score_se"], $col["kl_full"], 100 * $col["rm_gold_agreement"],
             100 * $col["rm_gold_agreement_se"] }' "$run/ppo/heldout.csv" || fail "$run/ppo/heldout.csv: not a heldout.csv of ppo"
}

# evaluate's bullet and its table as it printed it.
evaluate_output() {
  expect evaluate "samples (" 'samples \(([0-9]+) held-out prompts, ([0-9]+) each'
  echo "- **evaluate** (${BASH_REMATCH[2]} samples for each of the ${BASH_REMATCH[1]} held-out prompts, from both models):" |
    wrap_bullets
  echo
  echo '```'
  grep -v -e '^evaluate: wrote ' -e '^pipeline.sh: ' "$run/eval/log.txt"
  echo '```'
  echo
}

stages_block() {
  { pretrain_bullet; sft_bullet; prefs_bullet; train_rm_bullet; ppo_bullet; } | wrap_bullets
  echo
  heldout_table
  echo
  evaluate_output
}

# --- README with the blocks of this run ---
run_table_block > "$tmp/run-table"
stages_block > "$tmp/stages"

# Every block must be in README once, begin and end in order.
for b in $BLOCKS; do
  n_begin=$(grep -c "^<!-- readme_tables:$b begin" "$readme" || true)
  n_end=$(grep -c "^<!-- readme_tables:$b end" "$readme" || true)
  [ "$n_begin" = 1 ] && [ "$n_end" = 1 ] || fail "$readme: needs one '<!-- readme_tables:$b begin -->' and one '<!-- readme_tables:$b end -->' line"
done

# README with each block's lines replaced by the file of that name in $tmp.
awk -v dir="$tmp" '
  inside && index($0, "<!-- readme_tables:" inside " end") == 1 { inside = ""; print; next }
  inside { next }
  /^<!-- readme_tables:[a-z-]+ begin/ {
    print
    name = substr($0, 20); sub(/ .*/, "", name)
    file = dir "/" name
    while ((getline line < file) > 0) print line
    close(file); inside = name; next
  }
  { print }
  END { if (inside != "") { print "unclosed block " inside > "/dev/stderr"; exit 1 } }
' "$readme" > "$tmp/README.new" || fail "$readme: a readme_tables block is not closed"

if [ "$check" = 1 ]; then
  if diff -u --label "$readme" --label "$readme (from $run)" "$readme" "$tmp/README.new"; then exit 0; fi
  echo "$PROG: $readme differs from what $run gives: run scripts/$PROG $run --commit $commit" >&2
  exit 1
fi
# Beside README (same file system), so that mv replaces it atomically.
new="$readme.readme_tables.tmp"
cp "$tmp/README.new" "$new"
chmod --reference="$readme" "$new" 2>/dev/null || true
mv "$new" "$readme"
echo "$PROG: $readme: figures from $run (commit $commit)"
