// Replays tests/fuzz/corpus/score_tensors through tests/fuzz/score_tensors_fuzzer.cc (see docs/reliability.md).

#include "gtest/gtest.h"
#include "tests/fuzz/corpus_replay.h"

namespace {

TEST(ScoreTensorsFuzzCorpusTest, EveryCorpusFileRunsCleanly) { gan::fuzz::ReplayCorpus("score_tensors"); }

}  // namespace
