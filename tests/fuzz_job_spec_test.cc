// Replays tests/fuzz/corpus/job_spec through tests/fuzz/job_spec_fuzzer.cc (see docs/reliability.md).

#include "gtest/gtest.h"
#include "tests/fuzz/corpus_replay.h"

namespace {

TEST(JobSpecFuzzCorpusTest, EveryCorpusFileRunsCleanly) { gan::fuzz::ReplayCorpus("job_spec"); }

}  // namespace
