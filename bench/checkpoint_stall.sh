#!/usr/bin/env bash
# What a periodic checkpoint costs the training run that writes it: gan-train (seed preset,
# batch 64) trains the same steps three ways, interleaved for N rounds: with no periodic
# checkpoint (only the final one), with a checkpoint every K steps written in the background
# (the default), and the same written on the training thread (--background_checkpoints=false).
# Prints per round the training seconds, the cost per checkpoint ((t - t_none) / checkpoints) and
# the peak RSS, then medians. Needs build/bin/gan-train.
#   bench/checkpoint_stall.sh [--steps 100] [--every 5] [--rounds 3] [--threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=100 every=5 rounds=3 threads=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --every) every=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "checkpoint_stall: unknown option $1" >&2; exit 2 ;;
  esac
done
train=build/bin/gan-train
[[ -x $train ]] || { echo "checkpoint_stall: $train is missing" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "cpu: $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) cpus)"
echo "seed preset, batch 64, $threads threads, $steps steps, a checkpoint every $every steps"
checkpoints=$(( (steps - 1) / every ))
run() {  # mode -> "seconds peak_kb"
  local mode=$1 flags=()
  case "$mode" in
    none) flags=(--checkpoint_every 0) ;;
    background) flags=(--checkpoint_every "$every" --background_checkpoints=true) ;;
    foreground) flags=(--checkpoint_every "$every" --background_checkpoints=false) ;;
  esac
  rm -rf "$work/out"
  /usr/bin/time -f '%M' -o "$work/rss" "$train" --steps "$steps" --threads "$threads" \
    --log_every "$steps" "${flags[@]}" --out "$work/out" >"$work/log" 2>&1 ||
    { cat "$work/log" >&2; exit 1; }
  local seconds
  seconds=$(sed -n 's/^trained steps .* in \([0-9.]*\) s .*/\1/p' "$work/log")
  echo "$seconds $(cat "$work/rss")"
}
declare -A all
for ((r = 1; r <= rounds; r++)); do
  read -r t0 m0 < <(run none)
  read -r tb mb < <(run background)
  read -r tf mf < <(run foreground)
  cb=$(awk -v t="$tb" -v z="$t0" -v n="$checkpoints" 'BEGIN {printf "%.0f", (t - z) / n * 1000}')
  cf=$(awk -v t="$tf" -v z="$t0" -v n="$checkpoints" 'BEGIN {printf "%.0f", (t - z) / n * 1000}')
  printf 'round %d: none %s s (%d MB) | background %s s, %s ms/checkpoint (%d MB) | foreground %s s, %s ms/checkpoint (%d MB)\n' \
    "$r" "$t0" $((m0 / 1024)) "$tb" "$cb" $((mb / 1024)) "$tf" "$cf" $((mf / 1024))
  all[b]+="$cb " all[f]+="$cf "
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "median cost per checkpoint: background $(echo "${all[b]}" | median) ms," \
  "foreground $(echo "${all[f]}" | median) ms ($checkpoints periodic checkpoints per run)"
