#include "tests/test_jobs.h"

namespace gan::testing {

gan::v1::AdamSpec MakeAdam(float learning_rate) {
  gan::v1::AdamSpec adam;
  adam.set_learning_rate(learning_rate);
  adam.set_beta1(0.5f);
  adam.set_beta2(0.999f);
  adam.set_epsilon(1e-7f);
  return adam;
}

gan::v1::JobSpec TinyJob(int64_t steps) {
  gan::v1::JobSpec spec;
  gan::v1::GanSpec* gan = spec.mutable_gan();
  gan->mutable_noise()->set_distribution(gan::v1::NOISE_DISTRIBUTION_UNIFORM);
  gan->mutable_noise()->set_dim(16);
  gan->mutable_image_shape()->set_height(28);
  gan->mutable_image_shape()->set_width(28);
  gan->mutable_image_shape()->set_channels(1);
  gan->set_batch_size(8);
  auto* g = gan->mutable_generator();
  g->add_layers()->mutable_dense()->set_units(64);
  g->add_layers()->mutable_activation()->set_function(gan::v1::ACTIVATION_FUNCTION_RELU);
  g->add_layers()->mutable_dense()->set_units(784);
  g->add_layers()->mutable_activation()->set_function(gan::v1::ACTIVATION_FUNCTION_TANH);
  auto* reshape = g->add_layers()->mutable_reshape();
  reshape->set_channels(1);
  reshape->set_height(28);
  reshape->set_width(28);
  auto* d = gan->mutable_discriminator();
  d->add_layers()->mutable_flatten();
  d->add_layers()->mutable_dense()->set_units(32);
  auto* leaky = d->add_layers()->mutable_activation();
  leaky->set_function(gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU);
  leaky->set_alpha(0.2f);
  d->add_layers()->mutable_dense()->set_units(1);
  *gan->mutable_generator_optimizer() = MakeAdam(2e-4f);
  *gan->mutable_discriminator_optimizer() = MakeAdam(2e-4f);
  spec.set_dataset("synthetic");
  spec.set_steps(steps);
  spec.set_seed(3);
  return spec;
}

gan::v1::JobSpec LongJob() {
  gan::v1::JobSpec spec = TinyJob(1'000'000);
  spec.set_checkpoint_every(1'000'000);
  spec.set_metrics_every(1000);
  return spec;
}

}  // namespace gan::testing
