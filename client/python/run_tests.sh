#!/usr/bin/env bash
# Generates the Python stubs into BUILD_DIR/python and runs client/python/tests with Debian's
# python3 (python3-grpcio, python3-protobuf, python3-numpy) against BUILD_DIR/bin/gan-server.
# Usage: client/python/run_tests.sh [BUILD_DIR]   (default: <repo>/build)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
"$here/generate.sh" "$build/python"
export GANCLIENT_GEN_DIR="$build/python"
export GAN_SERVER_BINARY="${GAN_SERVER_BINARY:-$build/bin/gan-server}"
cd "$here"
exec /usr/bin/python3 -m unittest discover -s tests -v
