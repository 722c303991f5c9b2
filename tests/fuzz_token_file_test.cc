// Replays tests/fuzz/corpus/token_file through tests/fuzz/token_file_fuzzer.cc (see docs/reliability.md).

#include "gtest/gtest.h"
#include "tests/fuzz/corpus_replay.h"

namespace {

TEST(TokenFileFuzzCorpusTest, EveryCorpusFileRunsCleanly) { gan::fuzz::ReplayCorpus("token_file"); }

}  // namespace
