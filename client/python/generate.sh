#!/usr/bin/env bash
# Generates the Python protobuf and gRPC modules of proto/gan/v1 into OUT (default: build/python).
# Usage: client/python/generate.sh [OUT]
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-"$repo/build/python"}
plugin=$(command -v grpc_python_plugin) || {
  echo "generate.sh: grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)" >&2
  exit 1
}
mkdir -p "$out"
cd "$repo"
protoc -I proto --python_out="$out" --grpc_out="$out" --plugin=protoc-gen-grpc="$plugin" \
  proto/gan/v1/spec.proto proto/gan/v1/service.proto
