#include "client/health_warnings.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gan::ganctl {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

gan::v1::StepMetrics Step(int64_t step, gan::v1::LayerHealth layer0,
                          gan::v1::DiscriminatorHealth discriminator) {
  gan::v1::StepMetrics m;
  m.set_step(step);
  m.set_d_real(0.5f), m.set_d_fake(0.5f), m.set_d_accuracy(0.5f);
  auto* g = m.add_gradient_norms();
  g->set_layer("discriminator.0");
  g->set_relative_norm(0.002);
  g->set_health(layer0);
  auto* bn = m.add_gradient_norms();  // not assessed: never a line
  bn->set_layer("generator.1");
  bn->set_health(gan::v1::LAYER_HEALTH_UNSPECIFIED);
  m.set_discriminator_health(discriminator);
  return m;
}

TEST(HealthWarningsTest, OneLineWhenAFlagTurnsOnAndOneWhenItTurnsOff) {
  HealthWarnings warnings;
  EXPECT_THAT(warnings.Update(Step(0, gan::v1::LAYER_HEALTH_OK, gan::v1::DISCRIMINATOR_HEALTH_OK)),
              IsEmpty());
  EXPECT_THAT(
      warnings.Update(Step(1, gan::v1::LAYER_HEALTH_VANISHING, gan::v1::DISCRIMINATOR_HEALTH_OK)),
      ElementsAre("warning: step 2: discriminator.0 gradient vanishing (|grad|/|w| 0.002)"));
  // Still vanishing: nothing more.
  EXPECT_THAT(
      warnings.Update(Step(2, gan::v1::LAYER_HEALTH_VANISHING, gan::v1::DISCRIMINATOR_HEALTH_OK)),
      IsEmpty());
  EXPECT_THAT(
      warnings.Update(Step(3, gan::v1::LAYER_HEALTH_OK, gan::v1::DISCRIMINATOR_HEALTH_STALLED)),
      ElementsAre("step 4: discriminator.0 gradient ok again (|grad|/|w| 0.002)",
                  StartsWith("warning: step 4: discriminator stalled (D(x) 0.500")));
  EXPECT_THAT(warnings.Update(Step(4, gan::v1::LAYER_HEALTH_OK, gan::v1::DISCRIMINATOR_HEALTH_OK)),
              ElementsAre(StartsWith("step 5: discriminator ok again")));
}

TEST(HealthWarningsTest, EventsWithoutHealthChangeNothing) {
  // Metric events stored before gradient health existed carry UNSPECIFIED everywhere.
  HealthWarnings warnings;
  EXPECT_THAT(warnings.Update(Step(0, gan::v1::LAYER_HEALTH_EXPLODING,
                                   gan::v1::DISCRIMINATOR_HEALTH_COLLAPSED)),
              ElementsAre(StartsWith("warning: step 1: discriminator.0 gradient exploding"),
                          StartsWith("warning: step 1: discriminator collapsed")));
  EXPECT_THAT(warnings.Update(Step(1, gan::v1::LAYER_HEALTH_UNSPECIFIED,
                                   gan::v1::DISCRIMINATOR_HEALTH_UNSPECIFIED)),
              IsEmpty());
}

}  // namespace
}  // namespace gan::ganctl
