#!/usr/bin/env bash
# Installs what is missing, builds, and trains the seed GAN on Fashion-MNIST for a short run,
# printing its losses; writes runs/demo/samples.png. Pass gan-train flags to change the run,
# e.g. scripts/demo.sh --epochs 2 --out runs/seed-2ep
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
if [[ $# -eq 0 ]]; then
  set -- --steps 300 --log_every 25 --out runs/demo
fi
exec build/bin/gan-train --preset seed --dataset fashion-mnist "$@"
