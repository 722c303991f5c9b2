#ifndef GAN_CORE_GAN_TRAINER_H_
#define GAN_CORE_GAN_TRAINER_H_

// One GAN training iteration, as docs/architecture.md describes and bench/torch_peer.py does it:
//   1. D's step: fake = G(z_d) (G in training mode, no gradients); D on [real; fake] with labels
//      [1; 0]; backpropagate; Adam on D.
//   2. G's step: G(z_g) with fresh noise through D (D's weights not updated, fresh dropout masks),
//      labels 1; backpropagate through D into G; Adam on G.
// Both networks stay in training mode (BatchNorm batch statistics and running-stat updates in
// both of G's passes; dropout active in both of D's passes).
//
// All networks and buffers are created once by Create; Step allocates no tensor memory.
// spec.precision PRECISION_BF16 trains in mixed precision (core/precision.h): the networks'
// convolutions and Dense layers compute in bf16 with weight copies that each store's WeightCopies
// converts once per Adam step; parameters, gradients, Adam, BatchNorm and the loss stay fp32.
// Not thread-safe: one thread drives a trainer.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/adam.h"
#include "core/gan_spec.h"
#include "core/gradient_health.h"
#include "core/layers/weight_copies.h"
#include "core/parameter_store.h"
#include "core/precision.h"
#include "core/sequential.h"
#include "gan/v1/spec.pb.h"

namespace gan {

enum class Phase { kDiscriminatorStep = 0, kGeneratorStep = 1 };
enum class Role { kGenerator = 0, kDiscriminator = 1 };

// Source of a step's noise and dropout masks. Tests feed PyTorch's; training uses
// SeededRandomness.
class StepRandomness {
 public:
  virtual ~StepRandomness() = default;
  // Noise for G's forward in `phase`, (batch, noise dim) row-major.
  virtual void Noise(Phase phase, absl::Span<float> z) = 0;
  // 0/1 keep-mask for dropout entry `layer` of `role`'s network before its forward in `phase`,
  // shaped like that entry's input at the network's batch.
  virtual void DropoutMask(Phase phase, Role role, int layer, float rate,
                           absl::Span<float> mask) = 0;
};

// Counter-based randomness: a pure function of (seed, step), so runs are reproducible and a
// resumed run draws exactly what the uninterrupted one would have.
class SeededRandomness : public StepRandomness {
 public:
  SeededRandomness(uint64_t seed, int64_t step, gan::v1::NoiseDistribution distribution);
  void Noise(Phase phase, absl::Span<float> z) override;
  void DropoutMask(Phase phase, Role role, int layer, float rate, absl::Span<float> mask) override;

 private:
  uint64_t key_;
  gan::v1::NoiseDistribution distribution_;
};

struct LayerGradNorm {
  std::string layer;       // "discriminator.0": the entry owning the weight
  double norm;             // L2 norm of that entry's weight gradient
  double weight_norm = 0;  // L2 norm of the weight before the step's update
  bool kernel = true;      // a Conv or Dense kernel (2+ dims); false: BatchNorm's 1-D scale
  // From norm / weight_norm over a window of steps; set by TrainingRun (GradientHealthTracker).
  LayerHealth health = LayerHealth::kOk;
};

struct StepMetrics {
  int64_t step = 0;      // number of this iteration, from 0
  float d_loss = 0;      // D's BCE on [real; fake]
  float g_loss = 0;      // G's BCE (fake labelled real)
  float d_real = 0;      // mean D(x) on the real half, in D's step
  float d_fake = 0;      // mean D(G(z)) on the fake half, in D's step
  float d_accuracy = 0;  // fraction of D's step logits on the right side of 0
  // D's from its step, then G's from its step, in layer order.
  std::vector<LayerGradNorm> grad_norms;
  // From D's figures over a window of steps; set by TrainingRun (GradientHealthTracker).
  DiscriminatorHealth discriminator_health = DiscriminatorHealth::kOk;
};

class GanTrainer {
 public:
  // Validates the spec and builds every network; parameters start zero (call an initializer).
  // PRECISION_BF16 on a CPU without bf16 kernels (CheckPrecisionSupported), or with a bf16
  // convolution or matmul that oneDNN would run on a reference kernel, is FAILED_PRECONDITION.
  static absl::StatusOr<std::unique_ptr<GanTrainer>> Create(const gan::v1::GanSpec& spec,
                                                            const GanLimits& limits = {});

  const gan::v1::GanSpec& spec() const { return spec_; }
  const GanShapes& shapes() const { return shapes_; }
  int batch_size() const { return spec_.batch_size(); }
  // Floats in one real batch: batch * C * H * W.
  int64_t real_batch_size() const;
  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }

  ParameterStore& generator() { return *generator_; }
  ParameterStore& discriminator() { return *discriminator_; }
  Adam& generator_optimizer() { return generator_adam_; }
  Adam& discriminator_optimizer() { return discriminator_adam_; }

  // Convolution and matmul primitives of a model's training networks (the discriminator's at 2B,
  // then at B) with oneDNN's implementation names.
  std::vector<PrimitiveInfo> primitives(Role role) const;

  // One iteration on `real` ((batch, C, H, W) in [-1, 1]); increments step().
  StepMetrics Step(absl::Span<const float> real, StepRandomness& randomness);

 private:
  GanTrainer(const gan::v1::GanSpec& spec, GanShapes shapes);
  void FillMasks(Phase phase, Role role, Sequential& net, StepRandomness& randomness);
  // Adam step on one network, appending its weight-gradient and weight norms (computed in the
  // same pass).
  void UpdateAndMeasure(ParameterStore& store, Adam& adam, std::vector<LayerGradNorm>* norms);

  gan::v1::GanSpec spec_;
  GanShapes shapes_;
  std::unique_ptr<ParameterStore> generator_, discriminator_;
  Adam generator_adam_, discriminator_adam_;
  // bf16 weight copies of each store, shared by that store's networks (null in fp32).
  std::unique_ptr<WeightCopies> generator_copies_, discriminator_copies_;
  std::vector<dnnl::memory> d_buffers_;   // shared by d_step_ and d_frozen_
  std::unique_ptr<Sequential> g_train_;   // batch B
  std::unique_ptr<Sequential> d_step_;    // batch 2B, D's own step
  std::unique_ptr<Sequential> d_frozen_;  // batch B, inside G's step, input gradient only
  std::vector<float> d_labels_, g_labels_;
  std::vector<double> grad_sq_sums_, param_sq_sums_;
  int64_t step_ = 0;
};

}  // namespace gan

#endif  // GAN_CORE_GAN_TRAINER_H_
