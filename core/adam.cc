#include "core/adam.h"

#include <cmath>

namespace gan {

Adam::Adam(const gan::v1::AdamSpec& spec, int64_t size)
    : lr_(spec.learning_rate()),
      beta1_(spec.beta1()),
      beta2_(spec.beta2()),
      eps_(spec.epsilon()),
      m_(size, 0.0f),
      v_(size, 0.0f) {}

void Adam::Step(float* params, const float* grads) {
  ++steps_;
  const double t = static_cast<double>(steps_);
  // Bias corrections in double, as PyTorch computes them in Python floats.
  const float step_size = static_cast<float>(lr_ / (1.0 - std::pow(beta1_, t)));
  const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2_, t)));
  const float b1 = beta1_, b2 = beta2_, eps = eps_;
  float* m = m_.data();
  float* v = v_.data();
  const int64_t n = static_cast<int64_t>(m_.size());
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    params[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + eps);
  }
}

}  // namespace gan
