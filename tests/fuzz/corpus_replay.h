#ifndef GAN_TESTS_FUZZ_CORPUS_REPLAY_H_
#define GAN_TESTS_FUZZ_CORPUS_REPLAY_H_

// Replays a fuzz target's committed corpus as an ordinary test: the test executable links one
// tests/fuzz/<target>_fuzzer.cc and calls its LLVMFuzzerTestOneInput on every file.

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace gan::fuzz {

// Calls LLVMFuzzerTestOneInput on every file of tests/fuzz/corpus/<target> (sorted by name, one
// SCOPED_TRACE each). Fails when the directory is missing or empty or an input returns non-zero;
// a crash or a failed check in the target ends the test executable.
void ReplayCorpus(const std::string& target);

}  // namespace gan::fuzz

#endif  // GAN_TESTS_FUZZ_CORPUS_REPLAY_H_
