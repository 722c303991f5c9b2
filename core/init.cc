#include "core/init.h"

#include <algorithm>
#include <cmath>

#include "core/random.h"

namespace gan {
namespace {

// fan_in and fan_out of a weight in PyTorch layout: dims[1] and dims[0] times the kernel area.
// (Conv2DTranspose's IOHW swaps the two, which Glorot's sum does not notice.)
void Fans(const Dims& dims, double* fan_in, double* fan_out) {
  double receptive = 1;
  for (size_t i = 2; i < dims.size(); ++i) receptive *= dims[i];
  *fan_in = dims[1] * receptive;
  *fan_out = dims[0] * receptive;
}

}  // namespace

void InitializeGlorotUniform(uint64_t seed, ParameterStore* store) {
  uint64_t k = 0;
  for (const ParameterStore::Entry& e : store->entries()) {
    float* data = store->Data(e);
    const int64_t n = NumElements(e.dims);
    const bool is_bn = store->Find(e.layer, "running_mean") != nullptr;
    if (e.param == "running_mean" || e.param == "bias") {
      std::fill_n(data, n, 0.0f);
    } else if (e.param == "running_var" || (is_bn && e.param == "weight")) {
      std::fill_n(data, n, 1.0f);
    } else {
      double fan_in, fan_out;
      Fans(e.dims, &fan_in, &fan_out);
      const double limit = std::sqrt(6.0 / (fan_in + fan_out));
      const uint64_t key = MixKey(seed, 0x1417 + k++);
      for (int64_t i = 0; i < n; ++i) {
        data[i] = static_cast<float>((2.0 * UniformAt(key, i) - 1.0) * limit);
      }
    }
  }
  for (auto& [layer, count] : store->batches_tracked()) store->BatchesTracked(layer) = 0;
}

double PyTorchInitBound(const Dims& weight_dims) {
  double fan_in, fan_out;
  Fans(weight_dims, &fan_in, &fan_out);
  return fan_in > 0 ? 1.0 / std::sqrt(fan_in) : 0.0;
}

void InitializePyTorchDefault(uint64_t seed, ParameterStore* store) {
  uint64_t k = 0;
  for (const ParameterStore::Entry& e : store->entries()) {
    float* data = store->Data(e);
    const int64_t n = NumElements(e.dims);
    const bool is_bn = store->Find(e.layer, "running_mean") != nullptr;
    if (is_bn) {
      const bool ones = e.param == "weight" || e.param == "running_var";
      std::fill_n(data, n, ones ? 1.0f : 0.0f);
      continue;
    }
    // Weight and bias alike: U(-b, b) with the bound of the layer's weight.
    const double bound = PyTorchInitBound(store->Find(e.layer, "weight")->dims);
    const uint64_t key = MixKey(seed, 0x70797463ull + k++);  // "pytc"
    for (int64_t i = 0; i < n; ++i) {
      data[i] = static_cast<float>((2.0 * UniformAt(key, i) - 1.0) * bound);
    }
  }
  for (auto& [layer, count] : store->batches_tracked()) store->BatchesTracked(layer) = 0;
}

void InitializeParameters(gan::v1::Initializer initializer, uint64_t seed, ParameterStore* store) {
  if (initializer == gan::v1::INITIALIZER_PYTORCH) {
    InitializePyTorchDefault(seed, store);
  } else {
    InitializeGlorotUniform(seed, store);
  }
}

void InitializeForReference(uint64_t seed, uint64_t key_offset, ParameterStore* store) {
  uint64_t k = 0;
  for (const ParameterStore::Entry& e : store->entries()) {
    if (e.param != "weight" && e.param != "bias") continue;
    const uint64_t key = seed * 1000 + key_offset + k++;
    const bool is_bn = store->Find(e.layer, "running_mean") != nullptr;
    const Dims& weight_dims = store->Find(e.layer, "weight")->dims;
    const double bound = 1.0 / std::sqrt(static_cast<double>(NumElements(weight_dims)) /
                                         static_cast<double>(weight_dims[0]));
    float* data = store->Data(e);
    for (int64_t i = 0; i < NumElements(e.dims); ++i) {
      const double r = 2.0 * UniformAt(key, i) - 1.0;
      data[i] = static_cast<float>(!is_bn                ? r * bound
                                   : e.param == "weight" ? 1.0 + r * 0.1
                                                         : r * 0.1);
    }
  }
}

}  // namespace gan
