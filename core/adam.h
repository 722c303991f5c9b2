#ifndef GAN_CORE_ADAM_H_
#define GAN_CORE_ADAM_H_

// Adam over one flat parameter buffer, as torch.optim.Adam (no weight decay, no amsgrad):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

#include <cstdint>
#include <utility>
#include <vector>

#include "gan/v1/spec.pb.h"

namespace gan {

class Adam {
 public:
  Adam(const gan::v1::AdamSpec& spec, int64_t size);

  // One update of params[0, size) from grads; increments steps(). `segments` are consecutive
  // [begin, end) ranges that partition [0, size) (a model's tensors); for each the sum of squared
  // gradients is written to grad_sq_sums and the sum of squared parameters before the update to
  // param_sq_sums (both resized), computed in the same pass over memory.
  void Step(float* params, const float* grads,
            const std::vector<std::pair<int64_t, int64_t>>& segments,
            std::vector<double>* grad_sq_sums, std::vector<double>* param_sq_sums);

  int64_t steps() const { return steps_; }
  // State for checkpoints: first and second moments, and the step count t.
  std::vector<float>& exp_avg() { return m_; }
  std::vector<float>& exp_avg_sq() { return v_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  float lr_, beta1_, beta2_, eps_;
  int64_t steps_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace gan

#endif  // GAN_CORE_ADAM_H_
