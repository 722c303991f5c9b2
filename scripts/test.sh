#!/usr/bin/env bash
# Installs what is missing (the build-and-run and test package groups of scripts/setup.sh), builds,
# and runs the whole test suite (what CI runs): every ctest label, unit, e2e, slow and python in the
# Release build, then the `sanitize` tests again under AddressSanitizer + UndefinedBehaviorSanitizer
# in build-asan (GAN_SKIP_SANITIZERS=1 skips that second stage), then the `tsan` tests (the server's
# threads: executor, job manager, store, background checkpoint writes, in-process servers) under
# ThreadSanitizer in build-tsan, with OpenMP on one thread and the suppressions of tests/tsan.supp; any report fails its test
# (GAN_SKIP_TSAN=1 skips that third stage; set both for a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2 --timeout 600

if [[ ${GAN_SKIP_SANITIZERS:-0} == 1 ]]; then
  echo "test.sh: sanitizer stage skipped (GAN_SKIP_SANITIZERS=1)"
else
  sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$sanitize" \
    -DCMAKE_C_FLAGS="$sanitize" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
  cmake --build build-asan -j2 --target sanitizer_tests
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    ctest --test-dir build-asan -L sanitize --output-on-failure -j2 --timeout 900
fi

if [[ ${GAN_SKIP_TSAN:-0} == 1 ]]; then
  echo "test.sh: thread-sanitizer stage skipped (GAN_SKIP_TSAN=1)"
  exit 0
fi
# -g1: line numbers in the reports. OMP_NUM_THREADS=1 (also in each test's environment, through
# GAN_TEST_OMP_NUM_THREADS): TSan cannot see libgomp's barriers, so OpenMP teams would be reported.
tsan="-fsanitize=thread -fno-omit-frame-pointer -g1"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$tsan" \
  -DCMAKE_C_FLAGS="$tsan" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DGAN_TEST_OMP_NUM_THREADS=1
cmake --build build-tsan -j2 --target tsan_tests
OMP_NUM_THREADS=1 \
TSAN_OPTIONS=suppressions=$PWD/tests/tsan.supp:halt_on_error=1:exitcode=66:second_deadlock_stack=1 \
  ctest --test-dir build-tsan -L tsan --output-on-failure -j2 --timeout 900
