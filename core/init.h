#ifndef GAN_CORE_INIT_H_
#define GAN_CORE_INIT_H_

// Parameter initialization.

#include <cstdint>

#include "core/parameter_store.h"

namespace gan {

// Keras defaults: kernels Glorot-uniform, biases 0, BatchNorm weight 1 and bias 0, running mean
// 0 and variance 1. Deterministic in `seed`.
void InitializeGlorotUniform(uint64_t seed, ParameterStore* store);

// The reference-test scheme shared with scripts/make_reference_data.py: tensor k (counting the
// "weight" and "bias" entries in order) gets key = seed * 1000 + key_offset + k, element i
// u = UniformAt(key, i); BatchNorm weight 1 + (2u - 1) / 10, bias (2u - 1) / 10; other tensors
// (2u - 1) / sqrt(fan_in) with fan_in = numel(layer weight) / weight.dims[0].
void InitializeForReference(uint64_t seed, uint64_t key_offset, ParameterStore* store);

}  // namespace gan

#endif  // GAN_CORE_INIT_H_
