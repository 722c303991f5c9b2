#include "core/gradient_health.h"

#include <algorithm>
#include <cmath>

namespace gan {

double RelativeNorm(double grad_norm, double weight_norm) {
  return weight_norm > 0 ? grad_norm / weight_norm : 0.0;
}

GradientHealthTracker::GradientHealthTracker(const GradientHealthOptions& options)
    : options_(options) {}

void GradientHealthTracker::Reset() {
  layer_windows_.clear();
  d_window_.clear();
  layer_health_.clear();
  discriminator_health_ = DiscriminatorHealth::kOk;
}

void GradientHealthTracker::Observe(absl::Span<const double> relative_norms,
                                    const DiscriminatorSample& d) {
  const size_t window = static_cast<size_t>(std::max(options_.window_steps, 1));
  if (layer_windows_.size() != relative_norms.size()) {
    layer_windows_.assign(relative_norms.size(), {});
  }
  layer_health_.resize(relative_norms.size());
  for (size_t k = 0; k < relative_norms.size(); ++k) {
    std::deque<double>& w = layer_windows_[k];
    w.push_back(relative_norms[k]);
    if (w.size() > window) w.pop_front();
    layer_health_[k] = w.size() < window ? LayerHealth::kOk : LayerState(w);
  }
  d_window_.push_back(d);
  if (d_window_.size() > window) d_window_.pop_front();
  discriminator_health_ =
      d_window_.size() < window ? DiscriminatorHealth::kOk : DiscriminatorState();
}

LayerHealth GradientHealthTracker::LayerState(const std::deque<double>& window) const {
  // A NaN ratio counts on neither side; a run stops on a non-finite loss anyway.
  size_t below = 0, above = 0;
  for (double r : window) {
    below += r < options_.vanishing_ratio;
    above += r > options_.exploding_ratio;
  }
  if (2 * below > window.size()) return LayerHealth::kVanishing;
  if (2 * above > window.size()) return LayerHealth::kExploding;
  return LayerHealth::kOk;
}

DiscriminatorHealth GradientHealthTracker::DiscriminatorState() const {
  const bool always_right =
      std::all_of(d_window_.begin(), d_window_.end(),
                  [](const DiscriminatorSample& s) { return s.d_accuracy >= 1.0f; });
  if (always_right) return DiscriminatorHealth::kCollapsed;
  const double band = options_.stall_band;
  const bool pinned =
      std::all_of(d_window_.begin(), d_window_.end(), [band](const DiscriminatorSample& s) {
        return std::abs(s.d_real - 0.5) <= band && std::abs(s.d_fake - 0.5) <= band;
      });
  if (!pinned) return DiscriminatorHealth::kOk;
  // Older half: the first floor(n/2) steps; newer half: the last floor(n/2) (the middle step of
  // an odd window belongs to neither).
  const size_t half = d_window_.size() / 2;
  if (half == 0) return DiscriminatorHealth::kStalled;
  double older = 0, newer = 0;
  for (size_t i = 0; i < half; ++i) {
    older += d_window_[i].d_loss;
    newer += d_window_[d_window_.size() - 1 - i].d_loss;
  }
  older /= half;
  newer /= half;
  return newer >= older - options_.stall_loss_tolerance ? DiscriminatorHealth::kStalled
                                                        : DiscriminatorHealth::kOk;
}

}  // namespace gan
