// ResolveJobSpec (server/job_spec.h), its gradient_health options: unset fields take the defaults
// of core/gradient_health.h, set ones override them, and a negative, non-finite or absurd value is
// INVALID_ARGUMENT naming the field.

#include "server/job_spec.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_jobs.h"
#include "tests/test_util.h"

namespace gan::server {
namespace {

using ::gan::testing::StatusIs;
using ::testing::HasSubstr;

class JobSpecTest : public ::testing::Test {
 protected:
  JobSpecTest() : datasets_(::gan::testing::MakeTempDir("job_spec_test")) {
    defaults_.dataset = "synthetic";
    defaults_.checkpoint_every = 500;
    defaults_.keep_checkpoints = 3;
    defaults_.max_steps = 1'000'000;
  }

  absl::StatusOr<ResolvedJob> Resolve(const gan::v1::GradientHealthSpec& health) {
    gan::v1::JobSpec spec = ::gan::testing::TinyJob(5);
    *spec.mutable_gradient_health() = health;
    return ResolveJobSpec(spec, defaults_, &datasets_);
  }

  void ExpectRefused(const gan::v1::GradientHealthSpec& health, const std::string& field) {
    EXPECT_THAT(Resolve(health).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("gradient_health.", field, ":"))))
        << health.ShortDebugString();
  }

  JobDefaults defaults_;
  DatasetRegistry datasets_;
};

TEST_F(JobSpecTest, UnsetGradientHealthTakesTheDefaults) {
  GAN_ASSERT_OK_AND_ASSIGN(const ResolvedJob job, Resolve({}));
  const GradientHealthOptions defaults;
  EXPECT_EQ(job.gradient_health.window_steps, defaults.window_steps);
  EXPECT_EQ(job.gradient_health.vanishing_ratio, defaults.vanishing_ratio);
  EXPECT_EQ(job.gradient_health.exploding_ratio, defaults.exploding_ratio);
  EXPECT_EQ(job.gradient_health.stall_band, defaults.stall_band);
  EXPECT_EQ(job.gradient_health.stall_loss_tolerance, defaults.stall_loss_tolerance);
}

TEST_F(JobSpecTest, SetGradientHealthFieldsOverrideTheDefaults) {
  gan::v1::GradientHealthSpec health;
  health.set_window_steps(7);
  health.set_vanishing_ratio(0.01);
  health.set_exploding_ratio(3);
  health.set_stall_band(0.1);
  health.set_stall_loss_tolerance(0.02);
  GAN_ASSERT_OK_AND_ASSIGN(const ResolvedJob job, Resolve(health));
  EXPECT_EQ(job.gradient_health.window_steps, 7);
  EXPECT_EQ(job.gradient_health.vanishing_ratio, 0.01);
  EXPECT_EQ(job.gradient_health.exploding_ratio, 3);
  EXPECT_EQ(job.gradient_health.stall_band, 0.1);
  EXPECT_EQ(job.gradient_health.stall_loss_tolerance, 0.02);
}

TEST_F(JobSpecTest, BadGradientHealthValuesAreRefusedNamingTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  gan::v1::GradientHealthSpec health;
  health.set_window_steps(-1);
  ExpectRefused(health, "window_steps");
  health.set_window_steps(10001);
  ExpectRefused(health, "window_steps");
  for (double bad : {-0.5, nan, inf, 1e7}) {
    health.Clear();
    health.set_vanishing_ratio(bad);
    ExpectRefused(health, "vanishing_ratio");
    health.Clear();
    health.set_exploding_ratio(bad);
    ExpectRefused(health, "exploding_ratio");
  }
  // Thresholds that cross: nothing could be OK.
  health.Clear();
  health.set_vanishing_ratio(0.5);
  health.set_exploding_ratio(0.1);
  ExpectRefused(health, "exploding_ratio");
  health.Clear();
  health.set_vanishing_ratio(GradientHealthOptions().exploding_ratio * 2);
  ExpectRefused(health, "exploding_ratio");
  for (double bad : {-0.01, 0.6, nan}) {
    health.Clear();
    health.set_stall_band(bad);
    ExpectRefused(health, "stall_band");
  }
  for (double bad : {-0.01, 2.0, inf}) {
    health.Clear();
    health.set_stall_loss_tolerance(bad);
    ExpectRefused(health, "stall_loss_tolerance");
  }
}

}  // namespace
}  // namespace gan::server
