#!/usr/bin/env bash
# Installs what is missing (the build-and-run and test package groups of scripts/setup.sh), builds,
# and runs the whole test suite (what CI runs): every ctest label, unit, e2e, slow and python.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2 --timeout 600
