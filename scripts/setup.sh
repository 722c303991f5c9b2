#!/usr/bin/env bash
# Installs the Debian packages the project needs, in groups; does nothing (and prints nothing)
# when every package asked for is present.
#
#   scripts/setup.sh [--tests] [--plot] [--with-torch]
#
#   (always)      build and run: compiler, CMake, the -dev packages of every library the
#                 binaries link, GoogleTest (configuring with tests on needs it), protoc and the
#                 gRPC plugins, libonnx-dev (ONNX export), Fashion-MNIST. What scripts/demo.sh
#                 and the Dockerfile need.
#   --tests       the whole test suite (scripts/test.sh, CI): adds Prometheus (the server and
#                 promtool, run directly by tests/server_metrics_test; its system service is
#                 neither started nor left enabled, see below) and Python with grpcio, protobuf
#                 and numpy for the Python client's tests; Node.js and npm, then `npm ci
#                 --ignore-scripts` in tests/onnx (ONNX Runtime for tests/server_onnx_export_test,
#                 pinned by its package-lock.json; run again when node_modules is missing or older
#                 than the lock file).
#   --plot        matplotlib and the Python client's packages, for client/python/seed_question.py
#                 only (matplotlib pulls in ~1.5 GB of dependencies).
#   --with-torch  PyTorch (python3-torch, with OpenBLAS for its dense layers) for
#                 scripts/make_reference_data.py, scripts/load_checkpoint_in_torch.py and the
#                 benchmark peer bench/torch_peer.py. Neither the build nor CI needs it.
#
# Packages are installed with --no-install-recommends and a temporary /usr/sbin/policy-rc.d that
# refuses every service start (unless one already exists, as in Docker's Debian images), so
# installing `prometheus` starts no daemon; the prometheus.service that the package enables is
# then disabled again (`systemctl disable --now` where systemd runs). Uses sudo when not root.
set -euo pipefail

build=(
  build-essential cmake pkg-config
  libdnnl-dev ocl-icd-opencl-dev  # libdnnl-dev's CMake config needs OpenCL; it only recommends it
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgtest-dev libgmock-dev
  libsqlite3-dev zlib1g-dev libpng-dev libstb-dev
  libpq-dev  # the PostgreSQL job store (libpq); the server itself is only needed by --tests
  nlohmann-json3-dev libcli11-dev libspdlog-dev prometheus-cpp-dev
  libssl-dev  # SHA-256 of bearer tokens (gRPC's CMake config wants it too)
  libonnx-dev  # ONNX export (core/onnx_export): the ONNX protos and checker
  dataset-fashion-mnist
)
python_client=(python3 python3-grpcio python3-protobuf python3-numpy)
tests=(prometheus openssl "${python_client[@]}" nodejs npm)  # openssl: scripts/make_secrets.sh
tests+=(postgresql)  # tests/postgres_cluster.h runs its own initdb + pg_ctl cluster
tests+=(python3-yaml)  # tests/deploy_manifests_test reads deploy/'s Compose and Kubernetes YAML
tests+=(libtsan2)  # gcc's ThreadSanitizer runtime, for scripts/test.sh's build-tsan stage
plot=("${python_client[@]}" python3-matplotlib)
torch=(python3 python3-numpy python3-torch libopenblas0-openmp)
# Packages that ship a system service which the project never wants running.
services=(prometheus postgresql)

packages=("${build[@]}")
node_tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) packages+=("${tests[@]}"); node_tests=1 ;;
    --plot) packages+=("${plot[@]}") ;;
    --with-torch) packages+=("${torch[@]}") ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (see scripts/setup.sh --help)" >&2; exit 2 ;;
  esac
done

# tests/onnx's npm packages, from its package-lock.json; the install scripts are skipped (they only
# fetch GPU extras: the CPU runtime is in the package).
node_packages() {
  ((node_tests)) || return 0
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/onnx"
  if [[ -f $dir/node_modules/.package-lock.json &&
        ! $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    return 0
  fi
  echo "setup: installing tests/onnx's npm packages (npm ci)" >&2
  local log
  if log=$(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund 2>&1); then
    rm -f "$dir/npm-unavailable.txt"
    return 0
  fi
  # The registry could not be reached or refused us (no network, a proxy's certificate): the one
  # test that needs ONNX Runtime skips, printing this file, instead of the whole set-up failing.
  printf '%s\n' "$log" | tail -n 20 >&2
  printf 'npm ci failed in tests/onnx on %s:\n%s\n' "$(date -u +%FT%TZ)" \
    "$(printf '%s\n' "$log" | grep -m 3 -E 'ERR|error' || printf '%s\n' "$log" | tail -n 3)" \
    >"$dir/npm-unavailable.txt"
  echo "setup: warning: tests/onnx's npm packages could not be installed (above); the ONNX" \
       "Runtime comparison in tests/server_onnx_export_test will be skipped" >&2
}

missing=()
for p in "${packages[@]}"; do
  # A Node.js that bundles npm (NodeSource's nodejs package provides and conflicts with npm).
  if [[ $p == npm ]] && command -v npm >/dev/null; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    [[ " ${missing[*]} " == *" $p "* ]] || missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  node_packages
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# scripts/setup.sh installs packages: start no services.\nexit 101\n' \
    | "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod 0755 "$policy"
  own_policy=1
fi
remove_policy() { if ((own_policy)); then "${sudo_cmd[@]}" rm -f "$policy"; fi; }
trap remove_policy EXIT

"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
  "${missing[@]}"

# policy-rc.d kept the services from starting, but their packages enabled them for the next boot.
for s in "${services[@]}"; do
  [[ " ${missing[*]} " == *" $s "* ]] || continue
  state="its system service was not started"
  if command -v systemctl >/dev/null; then
    if [[ -d /run/systemd/system ]]; then
      "${sudo_cmd[@]}" systemctl disable --now "$s.service" >/dev/null 2>&1 || true
    else
      "${sudo_cmd[@]}" systemctl disable "$s.service" >/dev/null 2>&1 || true
    fi
    state+=" and is disabled"
  fi
  echo "setup: $s: $state (the tests run /usr/bin/$s themselves)" >&2
done

node_packages
