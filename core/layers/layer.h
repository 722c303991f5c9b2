#ifndef GAN_CORE_LAYERS_LAYER_H_
#define GAN_CORE_LAYERS_LAYER_H_

// One layer of a Sequential network bound to its buffers at one batch size. Every oneDNN
// primitive, memory and reorder is created by the factory; Forward/Backward only execute them.
//
// Buffers between layers are plain (nchw / nc) f32 memories owned by the network; a layer whose
// primitive prefers a blocked layout reorders internally. Parameters live in a ParameterStore
// (PyTorch layouts) shared by all networks of one model.

#include <memory>

#include "absl/status/statusor.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace gan {

enum class Pass {
  kTraining,   // batch statistics, dropout active, backward available
  kInference,  // running statistics, dropout is the identity, forward only
};

struct LayerBinding {
  const LayerShape* shape;
  int64_t batch;
  Pass pass;
  dnnl::engine engine;
  dnnl::memory src, dst;
  dnnl::memory diff_src;  // empty when nobody needs the gradient of this layer's input
  dnnl::memory diff_dst;  // empty for inference
  ParameterStore* params;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual void Forward(dnnl::stream& stream) = 0;
  // Writes diff_src (when bound) from diff_dst and, when `param_grads`, the layer's parameter
  // gradients into the store (overwriting them).
  virtual void Backward(dnnl::stream& stream, bool param_grads) = 0;
};

// True for entries that only reinterpret their input (Flatten, Reshape, linear activation, and
// Dropout at inference): the network aliases their output to their input and creates no layer.
bool IsView(const gan::v1::LayerSpec& spec, Pass pass);

// Creates the layer for a non-view entry. Returns INTERNAL when oneDNN rejects a primitive.
absl::StatusOr<std::unique_ptr<Layer>> CreateLayer(const LayerBinding& binding);

// Plain memory descriptor (nchw or nc) of a per-sample shape at a batch size.
dnnl::memory::desc PlainDesc(const Dims& per_sample, int64_t batch);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_LAYER_H_
