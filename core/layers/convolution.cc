#include "core/layers/convolution.h"

#include <unordered_map>
#include <utility>
#include <vector>

#include "core/layers/layout_adapter.h"

namespace gan {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

// oneDNN's convolution and deconvolution share one API shape; the traits pick the primitives, the
// algorithm and the layout of PyTorch's weights for the logical {OC, IC, KH, KW} dims.
struct ConvTraits {
  using Fwd = dnnl::convolution_forward;
  using BwdData = dnnl::convolution_backward_data;
  using BwdWeights = dnnl::convolution_backward_weights;
  static constexpr dnnl::algorithm kAlgorithm = dnnl::algorithm::convolution_direct;
};

struct DeconvTraits {
  using Fwd = dnnl::deconvolution_forward;
  using BwdData = dnnl::deconvolution_backward_data;
  using BwdWeights = dnnl::deconvolution_backward_weights;
  static constexpr dnnl::algorithm kAlgorithm = dnnl::algorithm::deconvolution_direct;
};

// How an entry maps onto a oneDNN (de)convolution.
struct ConvGeometry {
  int64_t filters, kernel, stride;
  bool use_bias;
  tag weights_tag;  // layout of the store's weights for the logical {OC, IC, K, K} dims
  memory::dims pad_l, pad_r;
  // The store holds the spatially flipped kernel of what the primitive computes with.
  bool flip_kernel = false;
};

// Writes k with its two spatial axes reversed: out[o, i, y, x] = in[o, i, K-1-y, K-1-x] for
// (OC*IC) kernels of K*K (the flip is its own inverse).
void FlipKernels(const float* in, int64_t kernels, int64_t k, float* out) {
  for (int64_t n = 0; n < kernels; ++n, in += k * k, out += k * k) {
    for (int64_t i = 0; i < k * k; ++i) out[i] = in[k * k - 1 - i];
  }
}

// Conv2D / Conv2DTranspose with optional bias.
//   src (N, IC, H, W) -> dst (N, OC, OH, OW); weights {OC, IC, K, K} logically.
// The primitives choose their layouts (format_tag::any); the output stays in the layout the
// forward convolution produces. Weights are reordered from the store's PyTorch layout on each
// use (they change every step); inputs only when their layout differs from the chosen one.
template <typename Traits>
class Convolution : public Layer {
 public:
  Convolution(const LayerContext& c, const ConvGeometry& g)
      : engine_(c.engine),
        training_(c.pass == Pass::kTraining),
        needs_diff_src_(c.needs_diff_src),
        use_bias_(g.use_bias),
        flip_(g.flip_kernel) {
    const LayerShape& shape = *c.shape;
    const int64_t filters = g.filters, kernel = g.kernel;
    const bool use_bias = g.use_bias;
    const memory::dims weights_dims = {filters, shape.input[0], kernel, kernel};
    const memory::dims strides = {g.stride, g.stride};
    const memory::dims& pad_l = g.pad_l;
    const memory::dims& pad_r = g.pad_r;
    auto any = [](const memory::dims& d) { return memory::desc(d, dt::f32, tag::any); };
    const memory::desc src_md = any(c.src_desc.dims());
    const memory::desc dst_md = any(PlainDesc(shape.output, c.batch).dims());
    const memory::desc weights_md = any(weights_dims);
    const memory::desc bias_md({filters}, dt::f32, tag::a);
    const memory::desc user_weights_md(weights_dims, dt::f32, g.weights_tag);
    store_weights_ = c.params->Value(shape.index, "weight");
    store_diff_weights_ = c.params->Grad(shape.index, "weight");
    kernels_ = filters * shape.input[0];
    kernel_ = kernel;
    if (flip_) flipped_.resize(2 * kernels_ * kernel * kernel);  // weights, then their gradient
    weights_ = memory(user_weights_md, engine_, flip_ ? flipped_.data() : store_weights_);
    if (use_bias) bias_ = memory(bias_md, engine_, c.params->Value(shape.index, "bias"));

    const auto prop = training_ ? dnnl::prop_kind::forward_training
                                : dnnl::prop_kind::forward_inference;
    fwd_pd_ = typename Traits::Fwd::primitive_desc(
        use_bias ? typename Traits::Fwd::desc(prop, Traits::kAlgorithm, src_md, weights_md,
                                              bias_md, dst_md, strides, pad_l, pad_r)
                 : typename Traits::Fwd::desc(prop, Traits::kAlgorithm, src_md, weights_md,
                                              dst_md, strides, pad_l, pad_r),
        engine_);
    fwd_ = typename Traits::Fwd(fwd_pd_);
    fwd_weights_ = LayoutAdapter(weights_, fwd_pd_.weights_desc(), engine_);
    if (!training_) return;

    if (needs_diff_src_) {
      data_pd_ = typename Traits::BwdData::primitive_desc(
          typename Traits::BwdData::desc(Traits::kAlgorithm, src_md, weights_md, dst_md, strides,
                                         pad_l, pad_r),
          engine_, fwd_pd_);
      bwd_data_ = typename Traits::BwdData(data_pd_);
      data_weights_ = LayoutAdapter(weights_, data_pd_.weights_desc(), engine_);
    }
    weights_pd_ = typename Traits::BwdWeights::primitive_desc(
        use_bias ? typename Traits::BwdWeights::desc(Traits::kAlgorithm, src_md, weights_md,
                                                     bias_md, dst_md, strides, pad_l, pad_r)
                 : typename Traits::BwdWeights::desc(Traits::kAlgorithm, src_md, weights_md,
                                                     dst_md, strides, pad_l, pad_r),
        engine_, fwd_pd_);
    bwd_weights_ = typename Traits::BwdWeights(weights_pd_);
    diff_weights_ = LayoutAdapter(
        memory(user_weights_md, engine_,
               flip_ ? flipped_.data() + kernels_ * kernel * kernel : store_diff_weights_),
        weights_pd_.diff_weights_desc(), engine_);
    if (use_bias) diff_bias_ = memory(bias_md, engine_, c.params->Grad(shape.index, "bias"));
  }

  dnnl::memory::desc dst_desc() const override { return fwd_pd_.dst_desc(); }

  void Bind(const LayerMemories& m) override {
    fwd_src_ = LayoutAdapter(m.src, fwd_pd_.src_desc(), engine_);
    dst_ = m.dst;
    if (!training_) return;
    if (needs_diff_src_) {
      data_diff_dst_ = LayoutAdapter(m.diff_dst, data_pd_.diff_dst_desc(), engine_);
      data_diff_src_ = LayoutAdapter(m.diff_src, data_pd_.diff_src_desc(), engine_);
    }
    // Reuse the forward's reordered source when the layouts agree (the usual case).
    weights_src_ = weights_pd_.src_desc() == fwd_pd_.src_desc()
                       ? LayoutAdapter(fwd_src_.memory(), weights_pd_.src_desc(), engine_)
                       : LayoutAdapter(m.src, weights_pd_.src_desc(), engine_);
    weights_diff_dst_ = LayoutAdapter(m.diff_dst, weights_pd_.diff_dst_desc(), engine_);
  }

  void Forward(dnnl::stream& s) override {
    if (flip_) FlipKernels(store_weights_, kernels_, kernel_, flipped_.data());
    fwd_src_.Import(s);
    fwd_weights_.Import(s);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, fwd_src_.memory()},
                                            {DNNL_ARG_WEIGHTS, fwd_weights_.memory()},
                                            {DNNL_ARG_DST, dst_}};
    if (use_bias_) args[DNNL_ARG_BIAS] = bias_;
    fwd_.execute(s, args);
  }

  void Backward(dnnl::stream& s, bool param_grads) override {
    if (needs_diff_src_) {
      data_diff_dst_.Import(s);
      data_weights_.Import(s);
      bwd_data_.execute(s, {{DNNL_ARG_DIFF_DST, data_diff_dst_.memory()},
                            {DNNL_ARG_WEIGHTS, data_weights_.memory()},
                            {DNNL_ARG_DIFF_SRC, data_diff_src_.memory()}});
      data_diff_src_.Export(s);
    }
    if (!param_grads) return;
    weights_src_.Import(s);
    weights_diff_dst_.Import(s);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, weights_src_.memory()},
                                            {DNNL_ARG_DIFF_DST, weights_diff_dst_.memory()},
                                            {DNNL_ARG_DIFF_WEIGHTS, diff_weights_.memory()}};
    if (use_bias_) args[DNNL_ARG_DIFF_BIAS] = diff_bias_;
    bwd_weights_.execute(s, args);
    diff_weights_.Export(s);
    if (flip_) {
      s.wait();
      FlipKernels(flipped_.data() + kernels_ * kernel_ * kernel_, kernels_, kernel_,
                  store_diff_weights_);
    }
  }

 private:
  dnnl::engine engine_;
  bool training_, needs_diff_src_, use_bias_, flip_;
  float* store_weights_;
  float* store_diff_weights_;
  int64_t kernels_ = 0, kernel_ = 0;
  std::vector<float> flipped_;
  typename Traits::Fwd::primitive_desc fwd_pd_;
  typename Traits::BwdData::primitive_desc data_pd_;
  typename Traits::BwdWeights::primitive_desc weights_pd_;
  typename Traits::Fwd fwd_;
  typename Traits::BwdData bwd_data_;
  typename Traits::BwdWeights bwd_weights_;
  memory weights_, bias_, diff_bias_, dst_;
  LayoutAdapter fwd_src_, fwd_weights_;
  LayoutAdapter data_diff_dst_, data_weights_, data_diff_src_;
  LayoutAdapter weights_src_, weights_diff_dst_, diff_weights_;
};

}  // namespace

std::unique_ptr<Layer> MakeConv2D(const LayerContext& c) {
  const gan::v1::Conv2D& conv = c.shape->spec.conv2d();
  const LayerShape& shape = *c.shape;
  ConvGeometry g{conv.filters(),
                 conv.kernel_size(),
                 conv.stride(),
                 conv.use_bias(),
                 tag::oihw,  // PyTorch Conv2d [out, in, kh, kw]
                 {shape.pad_before[0], shape.pad_before[1]},
                 {shape.pad_after[0], shape.pad_after[1]}};
  // oneDNN 2.6's direct convolution is slow when few output channels gather many input ones
  // (the generator's last 64 -> 1 convolution runs at ~8 GFLOP/s). At stride 1 the same result
  // is a transposed convolution with the kernel flipped and padding K-1-p for p, which oneDNN
  // computes with its fast backward-data kernels.
  if (conv.stride() == 1 && conv.filters() <= 4 && shape.input[0] >= 16) {
    g.flip_kernel = true;
    const int64_t k1 = conv.kernel_size() - 1;
    g.pad_l = {k1 - shape.pad_before[0], k1 - shape.pad_before[1]};
    g.pad_r = {k1 - shape.pad_after[0], k1 - shape.pad_after[1]};
    return std::make_unique<Convolution<DeconvTraits>>(c, g);
  }
  return std::make_unique<Convolution<ConvTraits>>(c, g);
}

std::unique_ptr<Layer> MakeConv2DTranspose(const LayerContext& c) {
  const gan::v1::Conv2DTranspose& conv = c.shape->spec.conv2d_transpose();
  const LayerShape& shape = *c.shape;
  return std::make_unique<Convolution<DeconvTraits>>(
      c, ConvGeometry{conv.filters(),
                      conv.kernel_size(),
                      conv.stride(),
                      conv.use_bias(),
                      tag::iohw,  // PyTorch ConvTranspose2d [in, out, kh, kw]
                      {shape.pad_before[0], shape.pad_before[1]},
                      {shape.pad_after[0], shape.pad_after[1]}});
}

}  // namespace gan
