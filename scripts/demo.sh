#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh's build-and-run group), builds, starts gan-server on
# loopback, trains the seed GAN on Fashion-MNIST for a short job through the API with ganctl
# (printing its losses), draws samples into runs/demo/samples.png, scores them with the trained
# discriminator, and stops the server.
#   scripts/demo.sh [STEPS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target gan-server ganctl gan-train

mkdir -p runs/demo
log=runs/demo/server.log
build/bin/gan-server --listen 127.0.0.1:0 --data_dir runs/demo/data > "$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$log")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n ${port:-} ]] || { cat "$log"; echo "gan-server did not start" >&2; exit 1; }
ganctl() { build/bin/ganctl --server "127.0.0.1:$port" "$@"; }

ganctl health
job=$(ganctl submit --preset seed --dataset fashion-mnist --steps "$steps")
echo "job $job"
ganctl watch "$job"
ganctl sample "$job" --count 64 --seed 1 --out runs/demo/samples.png
echo "samples: runs/demo/samples.png"
echo "D's probability that the sample grid (resized to 28x28) is real:"
ganctl score "$job" runs/demo/samples.png
