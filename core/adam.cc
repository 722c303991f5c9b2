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

void Adam::Step(float* params, const float* grads,
                const std::vector<std::pair<int64_t, int64_t>>& segments,
                std::vector<double>* grad_sq_sums, std::vector<double>* param_sq_sums) {
  ++steps_;
  const double t = static_cast<double>(steps_);
  // Bias corrections in double, as PyTorch computes them in Python floats.
  const float step_size = static_cast<float>(lr_ / (1.0 - std::pow(beta1_, t)));
  const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2_, t)));
  const float b1 = beta1_, b2 = beta2_, eps = eps_;
  float* m = m_.data();
  float* v = v_.data();
  grad_sq_sums->assign(segments.size(), 0.0);
  param_sq_sums->assign(segments.size(), 0.0);
  for (size_t k = 0; k < segments.size(); ++k) {
    double sq = 0, param_sq = 0;
    const int64_t begin = segments[k].first, end = segments[k].second;
    // The two sums only read; the update of m, v and params is what it was without them.
#pragma omp parallel for simd schedule(static) reduction(+ : sq, param_sq)
    for (int64_t i = begin; i < end; ++i) {
      const float g = grads[i];
      sq += static_cast<double>(g) * g;
      param_sq += static_cast<double>(params[i]) * params[i];
      m[i] = b1 * m[i] + (1.0f - b1) * g;
      v[i] = b2 * v[i] + (1.0f - b2) * g * g;
      params[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + eps);
    }
    (*grad_sq_sums)[k] = sq;
    (*param_sq_sums)[k] = param_sq;
  }
}

}  // namespace gan
