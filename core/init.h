#ifndef GAN_CORE_INIT_H_
#define GAN_CORE_INIT_H_

// Parameter initialization.

#include <cstdint>

#include "core/parameter_store.h"
#include "gan/v1/spec.pb.h"

namespace gan {

// The spec's initializer (gan::v1::Initializer; unspecified is Keras'): InitializeGlorotUniform
// or InitializePyTorchDefault.
void InitializeParameters(gan::v1::Initializer initializer, uint64_t seed, ParameterStore* store);

// Keras defaults: kernels Glorot-uniform, biases 0, BatchNorm weight 1 and bias 0, running mean
// 0 and variance 1. Deterministic in `seed`.
void InitializeGlorotUniform(uint64_t seed, ParameterStore* store);

// PyTorch's defaults (reset_parameters of nn.Linear, nn.Conv2d, nn.ConvTranspose2d, BatchNorm):
// weights kaiming_uniform_(a=sqrt(5)) and biases both U(-b, b) with b = PyTorchInitBound(the
// layer's weight dims); BatchNorm weight 1, bias 0, running mean 0, variance 1. Deterministic in
// `seed` (PyTorch's own generator is not reproduced: the distributions are).
void InitializePyTorchDefault(uint64_t seed, ParameterStore* store);

// 1 / sqrt(fan_in) with PyTorch's fan_in (torch.nn.init._calculate_fan_in_and_fan_out): dims[1]
// times the kernel area of a weight in PyTorch layout. Linear [out, in]: in; Conv2d OIHW: I*k*k;
// ConvTranspose2d IOHW: O*k*k (dim 1 is its output channels). kaiming_uniform_ with a = sqrt(5)
// has gain sqrt(2 / (1 + 5)) and bound gain * sqrt(3 / fan_in), which is this same value.
double PyTorchInitBound(const Dims& weight_dims);

// The reference-test scheme shared with scripts/make_reference_data.py: tensor k (counting the
// "weight" and "bias" entries in order) gets key = seed * 1000 + key_offset + k, element i
// u = UniformAt(key, i); BatchNorm weight 1 + (2u - 1) / 10, bias (2u - 1) / 10; other tensors
// (2u - 1) / sqrt(fan_in) with fan_in = numel(layer weight) / weight.dims[0].
void InitializeForReference(uint64_t seed, uint64_t key_offset, ParameterStore* store);

}  // namespace gan

#endif  // GAN_CORE_INIT_H_
