// Replays tests/fuzz/corpus/idx through tests/fuzz/idx_fuzzer.cc (see docs/reliability.md).

#include "gtest/gtest.h"
#include "tests/fuzz/corpus_replay.h"

namespace {

TEST(IdxReaderFuzzCorpusTest, EveryCorpusFileRunsCleanly) { gan::fuzz::ReplayCorpus("idx"); }

}  // namespace
