#include "core/gan_trainer.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/engine.h"
#include "core/loss.h"
#include "core/random.h"
#include "io/status_macros.h"

namespace gan {

SeededRandomness::SeededRandomness(uint64_t seed, int64_t step,
                                   gan::v1::NoiseDistribution distribution)
    : key_(MixKey(MixKey(seed, 0x6A09E667F3BCC908ull), static_cast<uint64_t>(step))),
      distribution_(distribution) {}

void SeededRandomness::Noise(Phase phase, absl::Span<float> z) {
  const uint64_t key = MixKey(key_, 0x100 + static_cast<uint64_t>(phase));
  for (size_t i = 0; i < z.size(); ++i) {
    z[i] = distribution_ == gan::v1::NOISE_DISTRIBUTION_NORMAL ? NormalAt(key, i)
                                                               : 2.0f * UniformAt(key, i) - 1.0f;
  }
}

void SeededRandomness::DropoutMask(Phase phase, Role role, int layer, float rate,
                                   absl::Span<float> mask) {
  const uint64_t key = MixKey(key_, 0x200 + (static_cast<uint64_t>(phase) << 20) +
                                        (static_cast<uint64_t>(role) << 16) + layer);
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = UniformAt(key, i) >= rate ? 1.0f : 0.0f;
}

GanTrainer::GanTrainer(const gan::v1::GanSpec& spec, GanShapes shapes)
    : spec_(spec),
      shapes_(std::move(shapes)),
      generator_(std::make_unique<ParameterStore>("generator", shapes_.generator)),
      discriminator_(std::make_unique<ParameterStore>("discriminator", shapes_.discriminator)),
      generator_adam_(spec.generator_optimizer(), generator_->trainable().size()),
      discriminator_adam_(spec.discriminator_optimizer(), discriminator_->trainable().size()) {
  const int64_t b = spec.batch_size();
  d_labels_.assign(2 * b, 0.0f);
  std::fill_n(d_labels_.begin(), b, 1.0f);
  g_labels_.assign(b, 1.0f);
}

absl::StatusOr<std::unique_ptr<GanTrainer>> GanTrainer::Create(const gan::v1::GanSpec& spec,
                                                               const GanLimits& limits) {
  GAN_ASSIGN_OR_RETURN(GanShapes shapes, ValidateGanSpec(spec, limits));
  GAN_RETURN_IF_ERROR(CheckPrecisionSupported(spec));
  std::unique_ptr<GanTrainer> t(new GanTrainer(spec, std::move(shapes)));
  const int64_t b = spec.batch_size();
  const dnnl::memory::data_type compute = ComputeDataType(EffectivePrecision(spec));
  if (compute != dnnl::memory::data_type::f32) {
    t->generator_copies_ = std::make_unique<WeightCopies>(t->generator_.get(), CpuEngine());
    t->discriminator_copies_ = std::make_unique<WeightCopies>(t->discriminator_.get(), CpuEngine());
  }
  NetworkOptions g_options{b, Pass::kTraining, false};
  g_options.compute = compute;
  g_options.weight_copies = t->generator_copies_.get();
  NetworkOptions d_options{2 * b, Pass::kTraining, false, &t->d_buffers_};
  d_options.compute = compute;
  d_options.weight_copies = t->discriminator_copies_.get();
  NetworkOptions frozen_options = d_options;
  frozen_options.batch = b;
  frozen_options.input_grad = true;
  GAN_ASSIGN_OR_RETURN(t->g_train_,
                       Sequential::Create(t->shapes_.generator, t->generator_.get(), g_options));
  GAN_ASSIGN_OR_RETURN(
      t->d_step_, Sequential::Create(t->shapes_.discriminator, t->discriminator_.get(), d_options));
  GAN_ASSIGN_OR_RETURN(t->d_frozen_, Sequential::Create(t->shapes_.discriminator,
                                                        t->discriminator_.get(), frozen_options));
  if (compute != dnnl::memory::data_type::f32) {
    // The ISA check passed; make sure no layer's shape sends a bf16 primitive to a reference
    // kernel (hundreds of times slower than fp32) instead of training slowly without a word.
    GAN_RETURN_IF_ERROR(CheckNoReferenceKernels("generator", t->primitives(Role::kGenerator)));
    GAN_RETURN_IF_ERROR(
        CheckNoReferenceKernels("discriminator", t->primitives(Role::kDiscriminator)));
  }
  return t;
}

std::vector<PrimitiveInfo> GanTrainer::primitives(Role role) const {
  if (role == Role::kGenerator) return g_train_->primitives();
  std::vector<PrimitiveInfo> out = d_step_->primitives();
  for (PrimitiveInfo& p : d_frozen_->primitives()) out.push_back(std::move(p));
  return out;
}

int64_t GanTrainer::real_batch_size() const {
  return spec_.batch_size() * NumElements(ImageDims(spec_.image_shape()));
}

void GanTrainer::FillMasks(Phase phase, Role role, Sequential& net, StepRandomness& randomness) {
  for (Dropout* d : net.dropout_layers()) {
    randomness.DropoutMask(phase, role, d->layer_index(), d->rate(), d->mask());
  }
}

void GanTrainer::UpdateAndMeasure(ParameterStore& store, Adam& adam,
                                  std::vector<LayerGradNorm>* norms) {
  std::vector<std::pair<int64_t, int64_t>> segments;
  std::vector<const ParameterStore::Entry*> trainable;
  for (const ParameterStore::Entry& e : store.entries()) {
    if (!e.trainable) continue;
    segments.emplace_back(e.offset, e.offset + NumElements(e.dims));
    trainable.push_back(&e);
  }
  adam.Step(store.trainable().data(), store.grads().data(), segments, &grad_sq_sums_,
            &param_sq_sums_);
  for (size_t k = 0; k < trainable.size(); ++k) {
    if (trainable[k]->param != "weight") continue;
    LayerGradNorm norm;
    norm.layer = absl::StrCat(store.model_name(), ".", trainable[k]->layer);
    norm.norm = std::sqrt(grad_sq_sums_[k]);
    norm.weight_norm = std::sqrt(param_sq_sums_[k]);
    norm.kernel = trainable[k]->dims.size() >= 2;
    norms->push_back(std::move(norm));
  }
}

StepMetrics GanTrainer::Step(absl::Span<const float> real, StepRandomness& randomness) {
  const int64_t b = spec_.batch_size();
  const int64_t image_floats = real_batch_size();
  StepMetrics m;
  m.step = step_;

  // D's step on [real; G(z_d)].
  randomness.Noise(Phase::kDiscriminatorStep, g_train_->input());
  FillMasks(Phase::kDiscriminatorStep, Role::kGenerator, *g_train_, randomness);
  g_train_->Forward();
  absl::Span<float> d_input = d_step_->input();
  std::copy_n(real.data(), image_floats, d_input.data());
  std::copy_n(g_train_->output().data(), image_floats, d_input.data() + image_floats);
  FillMasks(Phase::kDiscriminatorStep, Role::kDiscriminator, *d_step_, randomness);
  d_step_->Forward();
  const float* logits = d_step_->output().data();
  m.d_loss =
      BinaryCrossEntropyWithLogits(logits, d_labels_.data(), 2 * b, d_step_->output_grad().data());
  double real_sum = 0, fake_sum = 0;
  int correct = 0;
  for (int64_t i = 0; i < b; ++i) {
    real_sum += Sigmoid(logits[i]);
    fake_sum += Sigmoid(logits[b + i]);
    correct += (logits[i] > 0) + (logits[b + i] < 0);
  }
  m.d_real = static_cast<float>(real_sum / b);
  m.d_fake = static_cast<float>(fake_sum / b);
  m.d_accuracy = static_cast<float>(correct) / static_cast<float>(2 * b);
  d_step_->Backward(/*param_grads=*/true);
  UpdateAndMeasure(*discriminator_, discriminator_adam_, &m.grad_norms);

  // G's step through the updated, frozen D.
  randomness.Noise(Phase::kGeneratorStep, g_train_->input());
  FillMasks(Phase::kGeneratorStep, Role::kGenerator, *g_train_, randomness);
  g_train_->Forward();
  std::copy_n(g_train_->output().data(), image_floats, d_frozen_->input().data());
  FillMasks(Phase::kGeneratorStep, Role::kDiscriminator, *d_frozen_, randomness);
  d_frozen_->Forward();
  m.g_loss = BinaryCrossEntropyWithLogits(d_frozen_->output().data(), g_labels_.data(), b,
                                          d_frozen_->output_grad().data());
  d_frozen_->Backward(/*param_grads=*/false);
  std::copy_n(d_frozen_->input_grad().data(), image_floats, g_train_->output_grad().data());
  g_train_->Backward(/*param_grads=*/true);
  UpdateAndMeasure(*generator_, generator_adam_, &m.grad_norms);
  ++step_;
  return m;
}

}  // namespace gan
