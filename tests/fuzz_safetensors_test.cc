// Replays tests/fuzz/corpus/safetensors through tests/fuzz/safetensors_fuzzer.cc (see docs/reliability.md).

#include "gtest/gtest.h"
#include "tests/fuzz/corpus_replay.h"

namespace {

TEST(SafeTensorsFuzzCorpusTest, EveryCorpusFileRunsCleanly) { gan::fuzz::ReplayCorpus("safetensors"); }

}  // namespace
