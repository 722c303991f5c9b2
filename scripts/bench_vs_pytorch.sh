#!/usr/bin/env bash
# Runs build/bin/gan-bench and its PyTorch peer (bench/torch_peer.py, Debian's python3-torch)
# interleaved in one shell (ours, peer, ours, peer, ...; with --precision both, fp32 and bf16
# alternate within each round), N rounds (default 3), and prints the CPU model, every run, then
# per precision the medians and the ratios ours / peer, plus ours-bf16 / peer-fp32. Ratios, not
# absolute figures, are what compare: both sides share the machine's state at the moment.
#   scripts/bench_vs_pytorch.sh [--preset seed] [--batch 64] [--threads 2] [--steps 30]
#                               [--runs 3] [--precision fp32|bf16|both]
# bf16 runs `gan-bench --precision bf16` against `torch_peer.py --bf16` (torch.autocast). If
# gan-bench rejects --precision bf16, its error is printed and the script goes on without our
# bf16 runs. Needs build/bin/gan-bench (cmake --build build --target gan-bench) and PyTorch
# (bash scripts/setup.sh --with-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=seed batch=64 threads=2 steps=30 runs=3 precision=fp32
while [[ $# -gt 0 ]]; do
  case "$1" in
    --preset) preset=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench_vs_pytorch: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$precision" in
  fp32) precisions=(fp32) ;;
  bf16) precisions=(bf16) ;;
  both) precisions=(fp32 bf16) ;;
  *) echo "bench_vs_pytorch: --precision must be fp32, bf16 or both" >&2; exit 2 ;;
esac
ours=build/bin/gan-bench
peer=bench/torch_peer.py
python=/usr/bin/python3
if [[ ! -x $ours ]]; then
  echo "bench_vs_pytorch: $ours is missing: cmake --build build --target gan-bench" >&2
  exit 1
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "bench_vs_pytorch: $python has no torch: bash scripts/setup.sh --with-torch" >&2
  exit 1
fi

cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
bf16_isa=$(grep -o -w -m1 -E 'avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | paste -sd ' ' || true)
echo "cpu: ${cpu:-unknown} ($(nproc) cpus; bf16 instructions: ${bf16_isa:-none})"
echo "preset $preset, batch $batch, $threads threads, $steps timed steps, $runs rounds," \
  "precision $precision"

out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
ours_bf16=1
for ((i = 0; i < runs; i++)); do
  for p in "${precisions[@]}"; do
    ours_flags=() peer_flags=()
    if [[ $p == bf16 ]]; then ours_flags=(--precision bf16) peer_flags=(--bf16); fi
    if [[ $p == fp32 || $ours_bf16 == 1 ]]; then
      if line=$("$ours" --preset "$preset" --batch "$batch" --threads "$threads" --steps "$steps" \
                  "${ours_flags[@]}" --json 2>"$err"); then
        echo "ours $p $line" | tee -a "$out"
      else
        echo "bench_vs_pytorch: gan-bench failed for $p:" >&2
        cat "$err" >&2
        [[ -n $line ]] && echo "$line" >&2
        if [[ $p == bf16 ]]; then
          ours_bf16=0
          echo "bench_vs_pytorch: going on without gan-bench's bf16 runs" >&2
        else
          exit 1
        fi
      fi
    fi
    line=$("$python" "$peer" --preset "$preset" --batch "$batch" --threads "$threads" \
             --steps "$steps" "${peer_flags[@]}" --json)
    echo "peer $p $line" | tee -a "$out"
  done
done

"$python" - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    who, precision, js = line.split(" ", 2)
    rows.setdefault((who, precision), []).append(json.loads(js))

def median(who, precision, key):
    runs = rows.get((who, precision))
    return statistics.median(r[key] for r in runs) if runs else None

def cell(key, value):
    if value is None:
        return f"{'n/a':>12s}"
    return f"{value / 1e6:9.1f} MB" if key == "peak_rss_bytes" else f"{value:12.1f}"

def ratio(a, b):
    return f"{a / b:6.2f}" if a is not None and b else f"{'n/a':>6s}"

keys = ("train_images_per_s", "score_images_per_s", "peak_rss_bytes")
print("medians (ratio = ours / peer: above 1 is faster for the rates, below 1 is smaller for RSS)")
for precision in ("fp32", "bf16"):
    if not any(p == precision for _, p in rows):
        continue
    for key in keys:
        o, p = median("ours", precision, key), median("peer", precision, key)
        print(f"{precision} {key:20s} ours {cell(key, o)}  peer {cell(key, p)}  "
              f"ratio {ratio(o, p)}")
if ("ours", "bf16") in rows and ("peer", "fp32") in rows:
    for key in keys:
        o, p = median("ours", "bf16", key), median("peer", "fp32", key)
        print(f"ours-bf16 / peer-fp32 {key:20s} {ratio(o, p)}")
PY
