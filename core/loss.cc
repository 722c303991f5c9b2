#include "core/loss.h"

#include <cmath>

namespace gan {

float Sigmoid(float x) {
  if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

float BinaryCrossEntropyWithLogits(const float* logits, const float* labels, int64_t n,
                                   float* grad) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = logits[i], y = labels[i];
    total += std::max(x, 0.0f) - x * y + std::log1p(std::exp(-std::fabs(x)));
    if (grad != nullptr) grad[i] = (Sigmoid(x) - y) / static_cast<float>(n);
  }
  return static_cast<float>(total / static_cast<double>(n));
}

}  // namespace gan
