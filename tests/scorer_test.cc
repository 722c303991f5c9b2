// Scorer (core/scorer.h): passes of networks sized for at most `single_thread_images` images run
// on one OpenMP thread and give the scores the caller's whole team gives, for request sizes on
// either side of the threshold and across chunks; the caller's team size is left as it was.

#include "core/scorer.h"

#include <omp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/gan_trainer.h"
#include "core/init.h"
#include "core/presets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gan {
namespace {

using ::gan::testing::ExpectAllClose;
using ::gan::testing::IsOk;

struct Scores {
  std::vector<float> logits, probabilities;
};

Scores ScoreWith(Scorer& scorer, const std::vector<float>& images, int64_t n) {
  Scores s{std::vector<float>(n), std::vector<float>(n)};
  EXPECT_THAT(scorer.Score(absl::MakeConstSpan(images.data(), n * scorer.image_floats()), n,
                           absl::MakeSpan(s.logits), absl::MakeSpan(s.probabilities)),
              IsOk());
  return s;
}

TEST(ScorerTest, SmallPassesOnOneThreadScoreAsTheWholeTeamDoes) {
  GAN_ASSERT_OK_AND_ASSIGN(gan::v1::GanSpec spec, PresetSpec("seed"));
  GAN_ASSERT_OK_AND_ASSIGN(std::unique_ptr<GanTrainer> trainer, GanTrainer::Create(spec));
  InitializeParameters(spec.initializer(), 7, &trainer->discriminator());
  omp_set_num_threads(2);
  Scorer team(trainer->shapes().discriminator, &trainer->discriminator(), /*chunk=*/16);
  Scorer small_alone(trainer->shapes().discriminator, &trainer->discriminator(), /*chunk=*/16,
                     /*single_thread_images=*/8);
  constexpr int64_t kMost = 37;  // two whole chunks of 16 and a tail of 5
  std::vector<float> images(kMost * team.image_floats());
  for (size_t i = 0; i < images.size(); ++i)
    images[i] = static_cast<float>((i * 37) % 200) / 100 - 1;
  for (int64_t n : std::vector<int64_t>{1, 3, 8, 9, 16, 17, kMost}) {
    SCOPED_TRACE(absl::StrCat(n, " images"));
    const Scores expected = ScoreWith(team, images, n);
    const Scores actual = ScoreWith(small_alone, images, n);
    ExpectAllClose("logits", actual.logits, expected.logits, 1e-6, 1e-6);
    ExpectAllClose("probabilities", actual.probabilities, expected.probabilities, 1e-6, 1e-6);
    EXPECT_EQ(omp_get_max_threads(), 2) << "the caller's team size is restored";
  }
}

}  // namespace
}  // namespace gan
