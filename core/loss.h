#ifndef GAN_CORE_LOSS_H_
#define GAN_CORE_LOSS_H_

#include <cstdint>

namespace gan {

// Mean binary cross-entropy of n logits x against labels y in [0, 1], computed stably as
// max(x, 0) - x * y + log(1 + exp(-|x|)) (the sigmoid folded into the loss). Writes
// dloss/dx = (sigmoid(x) - y) / n into grad when grad is not null. Returns the mean loss.
float BinaryCrossEntropyWithLogits(const float* logits, const float* labels, int64_t n,
                                   float* grad);

// 1 / (1 + exp(-x)) without overflow for large |x|.
float Sigmoid(float x);

}  // namespace gan

#endif  // GAN_CORE_LOSS_H_
