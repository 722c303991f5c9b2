#ifndef GAN_CORE_LAYERS_WEIGHT_COPIES_H_
#define GAN_CORE_LAYERS_WEIGHT_COPIES_H_

// Low-precision copies of one ParameterStore's fp32 weights for mixed-precision training: each
// bf16 primitive asks for the tensor it multiplies with in the data type and layout it computes
// in (e.g. bf16 in AMX's blocked VNNI layout), and gets a memory that Refresh keeps equal to the
// store's current values. A copy is converted once per change of the store, not per use: Refresh
// compares the store's values_version() with the one it last converted, so after an Adam step (or
// an initializer, or a checkpoint load) the next network to run converts every copy once, and the
// other networks sharing the store (the discriminator at 2B and at B) find them fresh. The same
// (tensor, layout) requested by several primitives or networks is one copy.
// Not thread-safe; the networks sharing it run one at a time, as they share the store.

#include <cstdint>
#include <memory>
#include <vector>

#include "core/parameter_store.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gan {

// Writes k x k kernels with their two spatial axes reversed: out[n, y, x] = in[n, K-1-y, K-1-x]
// for `kernels` consecutive kernels (the flip is its own inverse).
void FlipKernels(const float* in, int64_t kernels, int64_t k, float* out);

class WeightCopies {
 public:
  WeightCopies(const ParameterStore* store, const dnnl::engine& engine);

  // The copy, laid out as `wanted`, of the fp32 tensor at `values` (a store tensor) whose layout
  // is `user`. With `flip_kernel` = K > 0 it is the copy of the tensor's K x K kernels flipped
  // spatially (FlipKernels). Equal arguments return the same memory.
  dnnl::memory Get(const float* values, const dnnl::memory::desc& user,
                   const dnnl::memory::desc& wanted, int64_t flip_kernel = 0);

  // Converts every copy when the store's values changed since the last conversion (or copies
  // were added); otherwise does nothing. Waits for the stream.
  void Refresh(dnnl::stream& stream);

  // Conversions done so far (for tests).
  int64_t refreshes() const { return refreshes_; }

 private:
  struct Copy {
    const float* values;
    dnnl::memory::desc user, wanted;
    int64_t flip_kernel;
    std::vector<float> flipped;  // the flipped fp32 kernels, when flip_kernel > 0
    dnnl::memory source, copy;
    dnnl::reorder convert;
  };

  const ParameterStore* store_;
  dnnl::engine engine_;
  std::vector<std::unique_ptr<Copy>> copies_;
  bool stale_ = true;
  uint64_t converted_version_ = 0;
  int64_t refreshes_ = 0;
};

}  // namespace gan

#endif  // GAN_CORE_LAYERS_WEIGHT_COPIES_H_
