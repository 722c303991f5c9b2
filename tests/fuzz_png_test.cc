// Replays tests/fuzz/corpus/png through tests/fuzz/png_fuzzer.cc (see docs/reliability.md).

#include "gtest/gtest.h"
#include "tests/fuzz/corpus_replay.h"

namespace {

TEST(PngReaderFuzzCorpusTest, EveryCorpusFileRunsCleanly) { gan::fuzz::ReplayCorpus("png"); }

}  // namespace
