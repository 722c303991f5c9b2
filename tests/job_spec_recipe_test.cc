// ResolveJobSpec (server/job_spec.h), the recipe and warm-start fields: pytorch_defaults turns a
// preset (or an explicit gan) into PyTorch's recipe, explicit optimizers still win, and
// init_from's fields are checked before anything is looked up.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/job_spec.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::IsOk;
using ::gan::testing::StatusIs;
using ::testing::HasSubstr;

class JobSpecRecipeTest : public ::testing::Test {
 protected:
  JobSpecRecipeTest() : datasets_(::gan::testing::MakeTempDir("job_spec_recipe_test")) {
    defaults_.dataset = "synthetic";
    defaults_.checkpoint_every = 500;
    defaults_.keep_checkpoints = 3;
    defaults_.max_steps = 1'000'000;
  }

  absl::StatusOr<ResolvedJob> Resolve(const gan::v1::JobSpec& spec) {
    return ResolveJobSpec(spec, defaults_, &datasets_);
  }

  JobDefaults defaults_;
  DatasetRegistry datasets_;
};

int CountBatchNorms(const gan::v1::ModelSpec& model, float epsilon, float momentum) {
  int count = 0;
  for (const gan::v1::LayerSpec& layer : model.layers()) {
    count += layer.has_batch_norm() && layer.batch_norm().epsilon() == epsilon &&
             layer.batch_norm().momentum() == momentum;
  }
  return count;
}

TEST_F(JobSpecRecipeTest, PresetsFollowKerasUnlessPyTorchDefaultsIsSet) {
  gan::v1::JobSpec spec;
  spec.set_preset("seed-dcgan");
  spec.set_steps(10);
  absl::StatusOr<ResolvedJob> keras = Resolve(spec);
  ASSERT_THAT(keras, IsOk());
  EXPECT_EQ(keras->gan.initializer(), gan::v1::INITIALIZER_UNSPECIFIED);
  EXPECT_EQ(keras->gan.discriminator_optimizer().epsilon(), 1e-7f);
  EXPECT_EQ(CountBatchNorms(keras->gan.generator(), 1e-3f, 0.01f), 3);

  spec.set_pytorch_defaults(true);
  absl::StatusOr<ResolvedJob> pytorch = Resolve(spec);
  ASSERT_THAT(pytorch, IsOk());
  EXPECT_EQ(pytorch->gan.initializer(), gan::v1::INITIALIZER_PYTORCH);
  EXPECT_EQ(pytorch->gan.generator_optimizer().epsilon(), 1e-8f);
  EXPECT_EQ(pytorch->gan.discriminator_optimizer().epsilon(), 1e-8f);
  EXPECT_EQ(pytorch->gan.generator_optimizer().learning_rate(), 2e-4f);
  EXPECT_EQ(CountBatchNorms(pytorch->gan.generator(), 1e-5f, 0.1f), 3);

  // An explicit optimizer replaces the recipe's whole.
  *spec.mutable_generator_optimizer() = ::gan::testing::MakeAdam(1e-3f);
  absl::StatusOr<ResolvedJob> overridden = Resolve(spec);
  ASSERT_THAT(overridden, IsOk());
  EXPECT_EQ(overridden->gan.generator_optimizer().epsilon(), 1e-7f);
  EXPECT_EQ(overridden->gan.discriminator_optimizer().epsilon(), 1e-8f);
}

TEST_F(JobSpecRecipeTest, AnUnknownInitializerIsRefused) {
  gan::v1::JobSpec spec = ::gan::testing::TinyJob(5);
  spec.mutable_gan()->set_initializer(static_cast<gan::v1::Initializer>(7));
  EXPECT_THAT(Resolve(spec).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("initializer")));
  spec.mutable_gan()->set_initializer(gan::v1::INITIALIZER_PYTORCH);
  EXPECT_THAT(Resolve(spec), IsOk());
}

TEST_F(JobSpecRecipeTest, InitFromFieldsAreChecked) {
  gan::v1::JobSpec spec = ::gan::testing::TinyJob(5);
  spec.mutable_init_from();
  EXPECT_THAT(Resolve(spec).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("init_from.job_id")));
  spec.mutable_init_from()->set_job_id("job-0123456789abcdef");
  spec.mutable_init_from()->set_checkpoint_step(-2);
  EXPECT_THAT(Resolve(spec).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("init_from.checkpoint_step")));
  // The rest (the job, its checkpoint, its tensors) is JobManager::Submit's, through the store.
  spec.mutable_init_from()->set_checkpoint_step(0);
  EXPECT_THAT(Resolve(spec), IsOk());
}

}  // namespace
}  // namespace gan::server
