#!/usr/bin/env bash
# The first run: installs what is missing (scripts/setup.sh's build-and-run group), builds, starts
# gan-server on loopback, trains the seed-dcgan GAN on Fashion-MNIST through the API with ganctl
# (a row of losses every 50 steps), draws 64 samples into runs/demo/samples.png, and ends with the
# trained discriminator scoring real test images and generated ones. Stops the server on exit.
#   scripts/demo.sh [STEPS]   (default 500: about a minute of training on an idle 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-500}
preset=seed-dcgan  # the seed networks with DCGAN's discriminator optimizer (Adam 2e-4, beta1 0.5)
test_images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz  # dataset-fashion-mnist
scored=16  # real test images and generated images scored at the end, of each

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target gan-server ganctl gan-train

out=runs/demo
mkdir -p "$out"
log=$out/server.log
build/bin/gan-server --listen 127.0.0.1:0 --data_dir "$out/data" >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$log")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n ${port:-} ]] || { cat "$log"; echo "gan-server did not start" >&2; exit 1; }
ganctl() { build/bin/ganctl --server "127.0.0.1:$port" "$@"; }

echo
echo "gan-server on 127.0.0.1:$port (log: $log)"
job=$(ganctl submit --preset "$preset" --dataset fashion-mnist --steps "$steps" --seed 1)
echo "job $job: preset $preset on Fashion-MNIST, $steps steps"
# D(x): the discriminator's mean probability that a real batch is real; D(G(z)): the same for
# the generator's batch. The job's id is printed above, so the last line names only the outcome.
ganctl watch --every 50 "$job" | sed "s/^job $job /training /"

ganctl sample "$job" --count 64 --seed 1 --out "$out/samples.png" >/dev/null
ganctl sample "$job" --count "$scored" --seed 2 --out "$out/generated.idx" >/dev/null
echo "samples: $out/samples.png"
# One line: the mean probability "real" the trained discriminator gives to real test images it
# never trained on, and to images the generator draws.
ganctl score "$job" --first "$scored" --summary "$test_images" "$out/generated.idx" |
  awk -v n="$scored" '{ for (i = 1; i < NF; ++i) if ($i == "mean") m[NR] = $(i + 1) }
    END { printf "the discriminator says \"real\" with mean probability %s for %d real test " \
                 "images and %s for %d generated ones\n", m[1], n, m[2], n }'
