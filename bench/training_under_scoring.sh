#!/usr/bin/env bash
# A training job's speed before and during scoring load on the same server: trains a small `seed`
# job to score with, starts a long `seed` training job (batch 64), measures its images/s for
# SECONDS (gan_train_images_total from /metrics), again while `ganctl bench score` sends
# single-image requests from 32 clients for SECONDS, and once more after, and prints the three
# rates with the scoring figures.
#   bench/training_under_scoring.sh [INFERENCE_THREADS=2] [THREADS_PER_JOB=2] [SECONDS=20]
# Needs build/bin/gan-server and build/bin/ganctl (Release) and python3. Everything it
# started is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
inference_threads=${1:-2} threads_per_job=${2:-2} seconds=${3:-20}
work=$(mktemp -d /tmp/gan-train-score-XXXXXX)
source bench/gan_server.sh
cleanup() {
  gan_server_stop
  rm -rf "$work"
}
trap cleanup EXIT

gan_server_start "$work" --metrics_listen 127.0.0.1:0 --max_concurrent_jobs 1 \
  --threads_per_job "$threads_per_job" --inference_threads "$inference_threads"
ganctl() { build/bin/ganctl --server "127.0.0.1:$GAN_PORT" "$@"; }
images_total() {
  python3 -c "import sys, urllib.request
total = 0.0
for line in urllib.request.urlopen(sys.argv[1]).read().decode().splitlines():
    if line.startswith('gan_train_images_total'):
        total += float(line.split()[-1])
print(total)" "http://127.0.0.1:$GAN_METRICS_PORT/metrics"
}

scored=$(ganctl submit --preset seed --steps 20)
ganctl watch "$scored" >/dev/null
trained=$(ganctl submit --preset seed --steps 1000000 --batch 64)
sleep "$seconds"  # warm-up: the job's first steps, its networks' creation
a=$(images_total); t0=$(date +%s.%N)
sleep "$seconds"
b=$(images_total); t1=$(date +%s.%N)
load=$(ganctl bench score --job "$scored" --concurrency 32 --duration "$seconds" \
  --images_per_request 1 | tr -s ' \n' ' ')
c=$(images_total); t2=$(date +%s.%N)
sleep "$seconds"
d=$(images_total); t3=$(date +%s.%N)
ganctl cancel "$trained" >/dev/null
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
python3 -c "import sys
a, b, c, d, t0, t1, t2, t3 = map(float, sys.argv[1:9])
before, during, after = (b - a) / (t1 - t0), (c - b) / (t2 - t1), (d - c) / (t3 - t2)
alone = (before + after) / 2
print(f'--inference_threads {sys.argv[9]} --threads_per_job {sys.argv[10]}: training {before:.1f} '
      f'images/s before, {during:.1f} under scoring load, {after:.1f} after '
      f'({during / alone:.2f}x the mean alone); scoring: {sys.argv[11].strip()} ({sys.argv[12]})')" \
  "$a" "$b" "$c" "$d" "$t0" "$t1" "$t2" "$t3" "$inference_threads" "$threads_per_job" "$load" "$cpu"
