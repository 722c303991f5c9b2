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
//
// Mixed precision (LayerContext.compute = bf16): convolutions, transposed convolutions and Dense
// layers convert their fp32 input once into the bf16 layout they compute in (forward), and their
// fp32 output gradient once into bf16 (backward; the copy serves backward data and backward
// weights), multiply with the bf16 weight copies of LayerContext.weight_copies and write fp32
// outputs, input gradients and weight gradients. Every other layer computes in fp32, so the
// tensors between layers are fp32 in either precision and those two conversions per compute
// layer and direction are all there is.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layers/weight_copies.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/precision.h"
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
  // Data type convolutions and Dense layers multiply in; bf16 needs weight_copies.
  dnnl::memory::data_type compute = dnnl::memory::data_type::f32;
  WeightCopies* weight_copies = nullptr;
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
  // Appends the layer's convolution and matmul primitives with oneDNN's implementation names.
  virtual void AppendPrimitives(std::vector<PrimitiveInfo>* out) const {}
};

// True for entries that only reinterpret a plain input (Flatten, Reshape), a linear activation,
// and Dropout at inference: the network aliases their output to their input. `src` is the
// input's layout and `plain_input` whether it is the plain one; `compute` the network's
// LayerContext.compute.
bool IsView(const gan::v1::LayerSpec& spec, Pass pass, const dnnl::memory::desc& src,
            bool plain_input, dnnl::memory::data_type compute = dnnl::memory::data_type::f32);

// Creates the layer for a non-view entry. INTERNAL when oneDNN rejects a primitive.
absl::StatusOr<std::unique_ptr<Layer>> CreateLayer(const LayerContext& context);

// oneDNN's implementation name of a created primitive ("brg:avx512_core_amx_bf16", ...).
std::string ImplInfo(const dnnl::primitive& primitive);

// Plain row-major memory descriptor (nchw or nc) of a per-sample shape at a batch size.
dnnl::memory::desc PlainDesc(const Dims& per_sample, int64_t batch);

}  // namespace gan

#endif  // GAN_CORE_LAYERS_LAYER_H_
