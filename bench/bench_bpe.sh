#!/usr/bin/env bash
# Benchmarks the tokenizer against sentencepiece's BPE on the Debian fortunes
# and writes the "Tokenizer" section of BENCHMARKS.md.
#   bench/bench_bpe.sh [RUNS]     (default 5 runs; medians are reported)
# Needs: a Release build (./scripts/test.sh builds one) and spm_train/spm_encode
# (Debian package sentencepiece).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-5}"
VOCAB=4096
FORTUNES=/usr/share/games/fortunes
BIN="$ROOT/build/bin"

for tool in spm_train spm_encode; do
  command -v "$tool" >/dev/null || { echo "bench_bpe.sh: $tool not found (apt-get install sentencepiece)" >&2; exit 1; }
done
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build" -j "$(nproc)" --target bench_bpe bpe >/dev/null

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The corpus: the non-offensive fortune files (no .dat/.u8 suffix, not under
# off/), split into fortunes at lines holding only "%"; every 10th fortune is
# held out for measuring compression.
mapfile -t files < <(find "$FORTUNES" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | LC_ALL=C sort)
awk -v train="$work/train.txt" -v held="$work/heldout.txt" '
  function flush() { if (buf != "") { print buf > (n % 10 == 9 ? held : train); n++ } buf = "" }
  FNR == 1 { flush() }
  /^%$/ { flush(); next }
  { buf = buf (buf == "" ? "" : "\n") $0 }
  END { flush() }' "${files[@]}"
train_bytes=$(wc -c < "$work/train.txt")
heldout_bytes=$(wc -c < "$work/heldout.txt")

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

# minirlhf: training, compression and encode speed in-process.
ours="$("$BIN/bench_bpe" --train "$work/train.txt" --heldout "$work/heldout.txt" --vocab $VOCAB \
        --runs "$RUNS" --out "$work/tokenizer.bin")"
get() { echo "$ours" | sed -n "s/^$1=//p"; }
# The bpe command end to end as a user runs it (file reading, output formatting).
bpe_train_cli=$(for _ in $(seq "$RUNS"); do
  seconds "$BIN/bpe" train --input "$work/train.txt" --vocab $VOCAB --out "$work/cli.bin"; done | median)
bpe_encode_cli=$(for _ in $(seq "$RUNS"); do
  seconds "$BIN/bpe" encode --tokenizer "$work/cli.bin" "$work/train.txt"; done | median)

# sentencepiece BPE at the same vocabulary size. Byte fallback, full character
# coverage, no normalisation and no whitespace squeezing make it lossless like
# ours; spm reads a file line by line, so compression is compared line by line
# (newlines excluded) for both.
spm_args=(--input="$work/train.txt" --model_prefix="$work/spm" --vocab_size=$VOCAB --model_type=bpe
          --character_coverage=1.0 --byte_fallback=true --normalization_rule_name=identity
          --remove_extra_whitespaces=false --num_threads="$(nproc)" --minloglevel=2)
spm_train_s=$(for _ in $(seq "$RUNS"); do seconds spm_train "${spm_args[@]}"; done | median)
spm_tokens=$(spm_encode --model="$work/spm.model" --output_format=id < "$work/heldout.txt" | wc -w)
spm_encode_s=$(for _ in $(seq "$RUNS"); do
  seconds sh -c "spm_encode --model='$work/spm.model' --output_format=id < '$work/train.txt'"; done | median)

line_chars=$(get heldout_line_chars)
ours_tpc=$(get heldout_line_tokens_per_char)
spm_tpc=$(echo "scale=6; $spm_tokens / $line_chars" | bc -l)
ratio=$(echo "scale=6; $ours_tpc / $spm_tpc" | bc -l)
mbs() { echo "scale=2; $train_bytes / $1 / 1000000" | bc -l; }

cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
section="$work/section.md"
{
  echo "## Tokenizer"
  echo
  echo "Byte-level BPE (\`bpe\`) against sentencepiece $(dpkg-query -W -f='${Version}' sentencepiece 2>/dev/null || echo '?') BPE, vocabulary $VOCAB,"
  echo "on the Debian fortunes (${#files[@]} non-offensive files, split at \`%\` lines; every 10th"
  echo "fortune held out): $train_bytes bytes of training text, $heldout_bytes held out."
  echo "Medians of $RUNS runs on $cpu, $(nproc) CPUs ($(date -u +%Y-%m-%d); load average $load_before"
  echo "when the run started, so other work may have shared the CPUs)."
  echo "Command: \`bench/bench_bpe.sh $RUNS\`."
  echo
  echo "| | minirlhf bpe | sentencepiece bpe |"
  echo "| --- | --- | --- |"
  printf '| training time (in-process) | %.2f s | |\n' "$(get train_seconds_median)"
  printf '| training time (command line) | %.2f s | %.2f s (%d threads) |\n' "$bpe_train_cli" "$spm_train_s" "$(nproc)"
  printf '| held-out tokens per character, line by line | %.4f (%d tokens) | %.4f (%d tokens) |\n' \
    "$ours_tpc" "$(get heldout_line_tokens)" "$spm_tpc" "$spm_tokens"
  printf '| held-out tokens per character, whole text with newlines | %.4f | n/a |\n' "$(get heldout_tokens_per_char)"
  printf '| encode throughput (in-process, training text) | %.1f MB/s | |\n' "$(get encode_mb_per_s_median)"
  printf '| encode throughput (command line, ids written as text) | %.1f MB/s | %.1f MB/s |\n' \
    "$(mbs "$bpe_encode_cli")" "$(mbs "$spm_encode_s")"
  echo
  printf 'Compression relative to sentencepiece: %.3f (tokens per character, ours / theirs; below 1 is better, target within 1.05).\n' "$ratio"
  echo
  echo "sentencepiece options: \`${spm_args[*]:2}\` (minus paths). Characters are Unicode code points;"
  echo "both tokenizers count the same ${line_chars} characters of held-out lines."
} > "$section"

# Replace the Tokenizer section of BENCHMARKS.md, keeping every other section.
bench_md="$ROOT/BENCHMARKS.md"
[ -f "$bench_md" ] || printf '# Benchmarks\n\n' > "$bench_md"
awk -v section="$section" '
  /^## / { if (skipping) skipping = 0; if ($0 == "## Tokenizer") { skipping = 1; while ((getline l < section) > 0) print l; print ""; done = 1; next } }
  !skipping { print }
  END { if (!done) { print ""; while ((getline l < section) > 0) print l } }' "$bench_md" > "$work/bench.md"
cat -s "$work/bench.md" > "$bench_md"
cat "$section"
