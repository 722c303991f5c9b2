#ifndef GAN_CORE_LAYERS_LAYER_H_
#define GAN_CORE_LAYERS_LAYER_H_

// One entry of a Sequential network at one batch size. A layer is made in two phases:
//   1. CreateLayer: given the layout of its input, it creates every oneDNN primitive and decides
//      the layout of its output (a convolution keeps the blocked layout it computes in, and the
//      layers after it work in that layout, so activations never bounce through plain NCHW);
//   2. Bind: the network hands it the buffers it laid out; reorders are created here.
// Forward/Backward only execute. A gradient has the layout of the activation it belongs to.
//
// Parameters live in a ParameterStore in PyTorch layouts, shared by all networks of one model.

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

struct LayerContext {
  const LayerShape* shape;
  int64_t batch;
  Pass pass;
  dnnl::engine engine;
  dnnl::memory::desc src_desc;  // layout of the input (and of its gradient)
  bool needs_diff_src;          // whether anybody needs the gradient of the input
  ParameterStore* params;
};

struct LayerMemories {
  dnnl::memory src, dst;
  dnnl::memory diff_src;  // empty when !needs_diff_src
  dnnl::memory diff_dst;  // empty for inference
};

class Layer {
 public:
  virtual ~Layer() = default;
  // Layout of the output and of its gradient.
  virtual dnnl::memory::desc dst_desc() const = 0;
  // Whether the layer computes correctly when dst aliases src (and diff_src aliases diff_dst):
  // element-wise layers whose backward needs only the output or a mask.
  virtual bool can_run_in_place() const { return false; }
  // Whether Backward reads this layer's own output (then nothing may overwrite it in place).
  virtual bool backward_reads_dst() const { return false; }
  virtual void Bind(const LayerMemories& memories) = 0;
  virtual void Forward(dnnl::stream& stream) = 0;
  // Writes diff_src (when bound) from diff_dst and, when `param_grads`, the layer's parameter
  // gradients into the store (overwriting them).
  virtual void Backward(dnnl::stream& stream, bool param_grads) = 0;
};

// True for entries that only reinterpret a plain input (Flatten, Reshape), a linear activation,
// and Dropout at inference: the network aliases their output to their input. `src` is the
// input's layout and `plain_input` whether it is the plain one.
bool IsView(const gan::v1::LayerSpec& spec, Pass pass, const dnnl::memory::desc& src,
            bool plain_input);

// Creates the layer for a non-view entry. INTERNAL when oneDNN rejects a primitive.
absl::StatusOr<std::unique_ptr<Layer>> CreateLayer(const LayerContext& context);

// Plain row-major memory descriptor (nchw or nc) of a per-sample shape at a batch size.
dnnl::memory::desc PlainDesc(const Dims& per_sample, int64_t batch);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_LAYER_H_
