#!/usr/bin/env bash
# Installs every Debian package the build, tests and tools need; does nothing when all are present.
# Usage: scripts/setup.sh [--with-torch]   (--with-torch adds PyTorch for the reference and benchmark
# scripts; the build and CI do not need it).
set -euo pipefail
packages=(
  build-essential cmake pkg-config git ca-certificates
  libdnnl-dev ocl-icd-opencl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev zlib1g-dev libpng-dev libstb-dev
  nlohmann-json3-dev libcli11-dev prometheus-cpp-dev
  prometheus
  dataset-fashion-mnist
  python3 python3-grpcio python3-protobuf python3-numpy python3-matplotlib
)
if [[ "${1:-}" == "--with-torch" ]]; then
  packages+=(python3-torch libopenblas0-openmp)
fi
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
