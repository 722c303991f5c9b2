#include "core/presets.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/framework_defaults.h"

namespace gan {
namespace {

using gan::v1::ActivationFunction;
using gan::v1::ModelSpec;
using gan::v1::Padding;

// Small builders so a preset reads like its Keras code, one entry per line.
class ModelBuilder {
 public:
  ModelBuilder& Conv(int filters, int k, int stride, Padding padding, bool bias = true) {
    auto* c = model_.add_layers()->mutable_conv2d();
    c->set_filters(filters), c->set_kernel_size(k), c->set_stride(stride);
    c->set_padding(padding), c->set_use_bias(bias);
    return *this;
  }
  ModelBuilder& ConvT(int filters, int k, int stride, bool bias) {
    auto* c = model_.add_layers()->mutable_conv2d_transpose();
    c->set_filters(filters), c->set_kernel_size(k), c->set_stride(stride);
    c->set_padding(gan::v1::PADDING_SAME), c->set_use_bias(bias);
    return *this;
  }
  ModelBuilder& Dense(int units, bool bias = true) {
    auto* d = model_.add_layers()->mutable_dense();
    d->set_units(units), d->set_use_bias(bias);
    return *this;
  }
  ModelBuilder& BatchNorm() {  // Keras' eps 1e-3 and momentum 0.99, in PyTorch's convention
    auto* bn = model_.add_layers()->mutable_batch_norm();
    bn->set_epsilon(kKerasBatchNormEpsilon), bn->set_momentum(kKerasBatchNormMomentum);
    return *this;
  }
  ModelBuilder& Act(ActivationFunction f, float alpha = 0) {
    auto* a = model_.add_layers()->mutable_activation();
    a->set_function(f), a->set_alpha(alpha);
    return *this;
  }
  ModelBuilder& LeakyRelu(float alpha) {
    return Act(gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU, alpha);
  }
  ModelBuilder& Dropout(float rate) {
    model_.add_layers()->mutable_dropout()->set_rate(rate);
    return *this;
  }
  ModelBuilder& UpSampling(int size) {
    model_.add_layers()->mutable_up_sampling2d()->set_size(size);
    return *this;
  }
  ModelBuilder& Flatten() {
    model_.add_layers()->mutable_flatten();
    return *this;
  }
  ModelBuilder& Reshape(int c, int h, int w) {
    auto* r = model_.add_layers()->mutable_reshape();
    r->set_channels(c), r->set_height(h), r->set_width(w);
    return *this;
  }
  ModelSpec Build() { return model_; }

 private:
  ModelSpec model_;
};

constexpr auto kRelu = gan::v1::ACTIVATION_FUNCTION_RELU;
constexpr auto kTanh = gan::v1::ACTIVATION_FUNCTION_TANH;
constexpr auto kSigmoid = gan::v1::ACTIVATION_FUNCTION_SIGMOID;
constexpr auto kSame = gan::v1::PADDING_SAME;
constexpr auto kValid = gan::v1::PADDING_VALID;

gan::v1::AdamSpec Adam(float lr, float beta1) {
  gan::v1::AdamSpec adam;
  adam.set_learning_rate(lr), adam.set_beta1(beta1), adam.set_beta2(0.999f);
  adam.set_epsilon(kKerasAdamEpsilon);
  return adam;
}

gan::v1::GanSpec Common(gan::v1::NoiseDistribution noise, int batch) {
  gan::v1::GanSpec spec;
  spec.mutable_noise()->set_distribution(noise);
  spec.mutable_noise()->set_dim(100);
  spec.mutable_image_shape()->set_height(28);
  spec.mutable_image_shape()->set_width(28);
  spec.mutable_image_shape()->set_channels(1);
  spec.set_batch_size(batch);
  return spec;
}

gan::v1::GanSpec SeedNetworks() {
  gan::v1::GanSpec spec = Common(gan::v1::NOISE_DISTRIBUTION_UNIFORM, 32);
  *spec.mutable_generator() = ModelBuilder()
                                  .Dense(1024)
                                  .BatchNorm()
                                  .Act(kRelu)  // 0-2
                                  .Dense(128 * 7 * 7)
                                  .BatchNorm()
                                  .Act(kRelu)  // 3-5
                                  .Reshape(128, 7, 7)
                                  .UpSampling(2)  // 6-7
                                  .Conv(64, 5, 1, kSame)
                                  .BatchNorm()
                                  .Act(kRelu)  // 8-10
                                  .UpSampling(2)
                                  .Conv(1, 5, 1, kSame)  // 11-12
                                  .Act(kTanh)            // 13
                                  .Build();
  *spec.mutable_discriminator() = ModelBuilder()
                                      .Conv(64, 5, 2, kSame)
                                      .LeakyRelu(0.2f)  // 0-1
                                      .Conv(128, 5, 2, kValid)
                                      .LeakyRelu(0.2f)  // 2-3
                                      .Flatten()
                                      .Dense(256)
                                      .LeakyRelu(0.2f)  // 4-6
                                      .Dropout(0.5f)
                                      .Dense(1)
                                      .Act(kSigmoid)  // 7-9
                                      .Build();
  return spec;
}

gan::v1::GanSpec TfDcgan() {
  gan::v1::GanSpec spec = Common(gan::v1::NOISE_DISTRIBUTION_NORMAL, 256);
  *spec.mutable_generator() = ModelBuilder()
                                  .Dense(7 * 7 * 256, false)
                                  .BatchNorm()
                                  .LeakyRelu(0.3f)     // 0-2
                                  .Reshape(256, 7, 7)  // 3
                                  .ConvT(128, 5, 1, false)
                                  .BatchNorm()
                                  .LeakyRelu(0.3f)  // 4-6
                                  .ConvT(64, 5, 2, false)
                                  .BatchNorm()
                                  .LeakyRelu(0.3f)  // 7-9
                                  .ConvT(1, 5, 2, false)
                                  .Act(kTanh)  // 10-11
                                  .Build();
  *spec.mutable_discriminator() = ModelBuilder()
                                      .Conv(64, 5, 2, kSame)
                                      .LeakyRelu(0.3f)
                                      .Dropout(0.3f)  // 0-2
                                      .Conv(128, 5, 2, kSame)
                                      .LeakyRelu(0.3f)
                                      .Dropout(0.3f)  // 3-5
                                      .Flatten()
                                      .Dense(1)  // 6-7
                                      .Build();
  *spec.mutable_generator_optimizer() = Adam(1e-4f, 0.9f);
  *spec.mutable_discriminator_optimizer() = Adam(1e-4f, 0.9f);
  return spec;
}

}  // namespace

std::vector<std::string> PresetNames() { return {"seed", "seed-dcgan", "tf-dcgan"}; }

absl::StatusOr<gan::v1::GanSpec> PresetSpec(absl::string_view name) {
  if (name == "seed" || name == "seed-dcgan") {
    gan::v1::GanSpec spec = SeedNetworks();
    *spec.mutable_generator_optimizer() = Adam(2e-4f, 0.5f);
    *spec.mutable_discriminator_optimizer() =
        name == "seed" ? Adam(1e-5f, 0.1f) : Adam(2e-4f, 0.5f);
    return spec;
  }
  if (name == "tf-dcgan") return TfDcgan();
  return absl::InvalidArgumentError(absl::StrCat(
      "preset: unknown preset '", name, "'; known presets: ", absl::StrJoin(PresetNames(), ", ")));
}

int SetHiddenActivations(const gan::v1::Activation& activation, gan::v1::ModelSpec* model) {
  int replaced = 0;
  for (int i = 0; i + 1 < model->layers_size(); ++i) {
    if (!model->layers(i).has_activation()) continue;
    *model->mutable_layers(i)->mutable_activation() = activation;
    ++replaced;
  }
  return replaced;
}

}  // namespace gan
