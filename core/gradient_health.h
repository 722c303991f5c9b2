#ifndef GAN_CORE_GRADIENT_HEALTH_H_
#define GAN_CORE_GRADIENT_HEALTH_H_

// Gradient health: flags a training run's layers whose weight gradients vanish or explode, and a
// discriminator that stopped learning or won outright, from a sliding window of steps. Pure logic:
// fed each step's per-layer norms and D's figures, it answers the flags of that step.
//
//   layer:         relative norm r = ||weight gradient|| / ||weight||; VANISHING while more than
//                  half of the last window_steps steps have r < vanishing_ratio, EXPLODING while
//                  more than half have r > exploding_ratio, else OK (for an odd window: the
//                  window's median decides). A minority of noisy steps in either direction
//                  changes nothing: one low step never flags, one high step never clears.
//   discriminator: COLLAPSED while d_accuracy is 1 in every step of the window; STALLED while
//                  |D(x) - 0.5| and |D(G(z)) - 0.5| are <= stall_band in every step of the window
//                  and the mean d_loss of its newer half is not below the older half's by more than
//                  stall_loss_tolerance (the loss does not fall); else OK.
// Until the window holds window_steps steps every flag is OK.

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/types/span.h"

namespace gan {

// The one home of the defaults (gan.v1.GradientHealthSpec leaves a field 0 to take them). The
// figures they come from are in docs/seed_question.md ("Gradient health thresholds").
struct GradientHealthOptions {
  int window_steps = 20;
  double vanishing_ratio = 0.004;
  double exploding_ratio = 50.0;
  double stall_band = 0.05;
  double stall_loss_tolerance = 0.005;
};

// kNotAssessed: a layer whose weight is a 1-D scale (BatchNorm's gamma, which starts at 1 and whose
// relative gradient is ~1e-4 in a healthy run) rather than a Conv or Dense kernel; the tracker
// itself never answers it (TrainingRun marks those layers).
enum class LayerHealth { kOk = 0, kVanishing = 1, kExploding = 2, kNotAssessed = 3 };
enum class DiscriminatorHealth { kOk = 0, kStalled = 1, kCollapsed = 2 };

// ||grad|| / ||w||, 0 when ||w|| is 0 (a layer whose weights are all zero has no scale yet).
double RelativeNorm(double grad_norm, double weight_norm);

// One step's discriminator figures (gan::StepMetrics' fields of D's step).
struct DiscriminatorSample {
  float d_loss = 0;
  float d_real = 0;
  float d_fake = 0;
  float d_accuracy = 0;
};

class GradientHealthTracker {
 public:
  explicit GradientHealthTracker(const GradientHealthOptions& options);

  // Adds one step: the relative norms of its layers (the same layers in the same order every
  // step; a different count starts the layer windows afresh) and D's figures. Then layer_health()
  // and discriminator_health() are this step's flags.
  void Observe(absl::Span<const double> relative_norms, const DiscriminatorSample& d);

  // Empties the window (a resumed run: the steps before it are not in memory).
  void Reset();

  const std::vector<LayerHealth>& layer_health() const { return layer_health_; }
  DiscriminatorHealth discriminator_health() const { return discriminator_health_; }
  const GradientHealthOptions& options() const { return options_; }

 private:
  LayerHealth LayerState(const std::deque<double>& window) const;
  DiscriminatorHealth DiscriminatorState() const;

  GradientHealthOptions options_;
  std::vector<std::deque<double>> layer_windows_;
  std::deque<DiscriminatorSample> d_window_;
  std::vector<LayerHealth> layer_health_;
  DiscriminatorHealth discriminator_health_ = DiscriminatorHealth::kOk;
};

}  // namespace gan

#endif  // GAN_CORE_GRADIENT_HEALTH_H_
