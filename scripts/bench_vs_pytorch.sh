#!/usr/bin/env bash
# Runs gan-bench and the PyTorch peer interleaved, N times each (default 3), in one shell, and
# prints every run plus the medians and ratios. Ratios, not absolute times, are what compare:
# both sides share the machine's state at the moment.
#   scripts/bench_vs_pytorch.sh [--preset seed] [--batch 64] [--threads 2] [--steps 30] [--runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=seed batch=64 threads=2 steps=30 runs=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --preset) preset=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
peer=../shared/peers/torch_dcgan_bench.py
[[ -f $peer ]] || { echo "the PyTorch peer $peer is missing" >&2; exit 1; }
out=$(mktemp)
for ((i = 0; i < runs; i++)); do
  build/bin/gan-bench --preset "$preset" --batch "$batch" --threads "$threads" --steps "$steps" \
    --json | sed 's/^/ours /' | tee -a "$out"
  /usr/bin/python3 "$peer" --preset "$preset" --batch "$batch" --threads "$threads" \
    --steps "$steps" | sed 's/^/peer /' | tee -a "$out"
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = {"ours": [], "peer": []}
for line in open(sys.argv[1]):
    who, _, js = line.partition(" ")
    rows[who].append(json.loads(js))
def med(who, key):
    return statistics.median(r[key] for r in rows[who])
for key in ("train_images_per_s", "score_images_per_s", "peak_rss_bytes"):
    o, p = med("ours", key), med("peer", key)
    print(f"{key:20s} ours {o:12.1f}  peer {p:12.1f}  ratio {o / p:5.2f}")
PY
rm -f "$out"
