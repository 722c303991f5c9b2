#!/usr/bin/env bash
# Resident memory of gan-server per cached model: trains MODELS jobs of PRESET (2 steps each, one
# checkpoint) with one server, then starts a fresh server on the same data directory (so nothing
# of the training is in its heap), and records VmRSS (/proc/PID/status) idle, after scoring with
# each job's discriminator in turn (single-image requests, then 64-image requests), and after
# sampling from each job's generator. Prints a table and the cost per additional model.
#   bench/model_cache_memory.sh [MODELS=4] [PRESET=seed]
# Needs build/bin/gan-server and build/bin/ganctl (Release). Everything it started is stopped and
# removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
models=${1:-4} preset=${2:-seed}
work=$(mktemp -d /tmp/gan-cache-memory-XXXXXX)
source bench/gan_server.sh
cleanup() {
  gan_server_stop
  rm -rf "$work"
}
trap cleanup EXIT
start_server() { gan_server_start "$work" --metrics_listen= --max_cached_models "$models"; }
stop_server() { gan_server_stop; }
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$GAN_PID/status"; }
ganctl() { build/bin/ganctl --server "127.0.0.1:$GAN_PORT" "$@"; }

start_server
ids=()
for ((m = 0; m < models; ++m)); do
  ids+=("$(ganctl submit --preset "$preset" --steps 2 --seed $((m + 1)))")
done
for id in "${ids[@]}"; do ganctl watch "$id" >/dev/null; done
stop_server

start_server
sleep 1
idle=$(rss_mb)
echo "preset $preset, $models models, gan-server pid $GAN_PID; VmRSS in MB"
printf '%-34s %9s %9s\n' "after" "VmRSS" "delta"
printf '%-34s %9s %9s\n' "idle (fresh server, jobs done)" "$idle" "-"
prev=$idle
row() {
  local now
  now=$(rss_mb)
  printf '%-34s %9s %9s\n' "$1" "$now" "$(awk -v a="$now" -v b="$prev" 'BEGIN {printf "%+.1f", a - b}')"
  prev=$now
}
for ((m = 0; m < models; ++m)); do
  ganctl bench score --job "${ids[m]}" --concurrency 1 --duration 0.5 --images_per_request 1 >/dev/null
  row "score model $((m + 1)), 1 image"
done
after_single=$prev
for ((m = 0; m < models; ++m)); do
  ganctl bench score --job "${ids[m]}" --concurrency 2 --duration 0.5 --images_per_request 64 >/dev/null
  row "score model $((m + 1)), 64 images"
done
after_batch=$prev
for ((m = 0; m < models; ++m)); do
  ganctl sample "${ids[m]}" --count 16 --out "$work/sample-$m.png" >/dev/null
  row "sample model $((m + 1)), 16 images"
done
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
awk -v i="$idle" -v s="$after_single" -v b="$after_batch" -v e="$prev" -v n="$models" -v cpu="$cpu" \
  'BEGIN {printf "per model above idle: %.1f MB scoring single images, %.1f MB with 64-image batches, %.1f MB after sampling too (%s)\n", (s - i) / n, (b - i) / n, (e - i) / n, cpu}'
