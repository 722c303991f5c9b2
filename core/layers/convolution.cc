#include "core/layers/convolution.h"

#include <unordered_map>

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
  static constexpr tag kWeightsTag = tag::oihw;  // PyTorch Conv2d [out, in, kh, kw]
};

struct DeconvTraits {
  using Fwd = dnnl::deconvolution_forward;
  using BwdData = dnnl::deconvolution_backward_data;
  using BwdWeights = dnnl::deconvolution_backward_weights;
  static constexpr dnnl::algorithm kAlgorithm = dnnl::algorithm::deconvolution_direct;
  static constexpr tag kWeightsTag = tag::iohw;  // PyTorch ConvTranspose2d [in, out, kh, kw]
};

// Conv2D / Conv2DTranspose with optional bias.
//   src (N, IC, H, W) -> dst (N, OC, OH, OW); weights {OC, IC, K, K} logically.
// Convolutions choose their own layouts (format_tag::any); plain buffers are reordered in and out.
template <typename Traits>
class Convolution : public Layer {
 public:
  Convolution(const LayerBinding& b, int64_t filters, int64_t kernel, int64_t stride,
              bool use_bias)
      : has_diff_src_(static_cast<bool>(b.diff_src)), use_bias_(use_bias) {
    const LayerShape& shape = *b.shape;
    const int64_t ic = shape.input[0];
    const memory::dims weights_dims = {filters, ic, kernel, kernel};
    const memory::dims strides = {stride, stride};
    const memory::dims pad_l = {shape.pad_before[0], shape.pad_before[1]};
    const memory::dims pad_r = {shape.pad_after[0], shape.pad_after[1]};
    auto any = [](const memory::dims& d) { return memory::desc(d, dt::f32, tag::any); };
    const memory::desc src_md = any(b.src.get_desc().dims());
    const memory::desc dst_md = any(b.dst.get_desc().dims());
    const memory::desc weights_md = any(weights_dims);
    const memory::desc bias_md({filters}, dt::f32, tag::a);

    const memory user_weights({weights_dims, dt::f32, Traits::kWeightsTag}, b.engine,
                              b.params->Value(shape.index, "weight"));
    if (use_bias) bias_ = memory(bias_md, b.engine, b.params->Value(shape.index, "bias"));

    const auto prop = b.pass == Pass::kTraining ? dnnl::prop_kind::forward_training
                                                : dnnl::prop_kind::forward_inference;
    const typename Traits::Fwd::desc fwd_desc =
        use_bias ? typename Traits::Fwd::desc(prop, Traits::kAlgorithm, src_md, weights_md,
                                              bias_md, dst_md, strides, pad_l, pad_r)
                 : typename Traits::Fwd::desc(prop, Traits::kAlgorithm, src_md, weights_md,
                                              dst_md, strides, pad_l, pad_r);
    const typename Traits::Fwd::primitive_desc fwd_pd(fwd_desc, b.engine);
    fwd_ = typename Traits::Fwd(fwd_pd);
    fwd_src_ = LayoutAdapter(b.src, fwd_pd.src_desc(), b.engine);
    fwd_weights_ = LayoutAdapter(user_weights, fwd_pd.weights_desc(), b.engine);
    fwd_dst_ = LayoutAdapter(b.dst, fwd_pd.dst_desc(), b.engine);
    if (b.pass == Pass::kInference) return;

    if (has_diff_src_) {
      const typename Traits::BwdData::desc data_desc(Traits::kAlgorithm, src_md, weights_md,
                                                     dst_md, strides, pad_l, pad_r);
      const typename Traits::BwdData::primitive_desc data_pd(data_desc, b.engine, fwd_pd);
      bwd_data_ = typename Traits::BwdData(data_pd);
      data_diff_dst_ = LayoutAdapter(b.diff_dst, data_pd.diff_dst_desc(), b.engine);
      data_weights_ = LayoutAdapter(user_weights, data_pd.weights_desc(), b.engine);
      data_diff_src_ = LayoutAdapter(b.diff_src, data_pd.diff_src_desc(), b.engine);
    }

    const memory user_diff_weights({weights_dims, dt::f32, Traits::kWeightsTag}, b.engine,
                                   b.params->Grad(shape.index, "weight"));
    if (use_bias) diff_bias_ = memory(bias_md, b.engine, b.params->Grad(shape.index, "bias"));
    const typename Traits::BwdWeights::desc weights_desc =
        use_bias ? typename Traits::BwdWeights::desc(Traits::kAlgorithm, src_md, weights_md,
                                                     bias_md, dst_md, strides, pad_l, pad_r)
                 : typename Traits::BwdWeights::desc(Traits::kAlgorithm, src_md, weights_md,
                                                     dst_md, strides, pad_l, pad_r);
    const typename Traits::BwdWeights::primitive_desc weights_pd(weights_desc, b.engine, fwd_pd);
    bwd_weights_ = typename Traits::BwdWeights(weights_pd);
    // The forward's reordered source is reused when the layouts agree (the usual case).
    weights_src_ = weights_pd.src_desc() == fwd_pd.src_desc()
                       ? LayoutAdapter(fwd_src_.memory(), weights_pd.src_desc(), b.engine)
                       : LayoutAdapter(b.src, weights_pd.src_desc(), b.engine);
    weights_diff_dst_ =
        has_diff_src_ && weights_pd.diff_dst_desc() == data_diff_dst_.memory().get_desc()
            ? LayoutAdapter(data_diff_dst_.memory(), weights_pd.diff_dst_desc(), b.engine)
            : LayoutAdapter(b.diff_dst, weights_pd.diff_dst_desc(), b.engine);
    diff_weights_ = LayoutAdapter(user_diff_weights, weights_pd.diff_weights_desc(), b.engine);
  }

  void Forward(dnnl::stream& s) override {
    fwd_src_.Import(s);
    fwd_weights_.Import(s);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, fwd_src_.memory()},
                                            {DNNL_ARG_WEIGHTS, fwd_weights_.memory()},
                                            {DNNL_ARG_DST, fwd_dst_.memory()}};
    if (use_bias_) args[DNNL_ARG_BIAS] = bias_;
    fwd_.execute(s, args);
    fwd_dst_.Export(s);
  }

  void Backward(dnnl::stream& s, bool param_grads) override {
    if (has_diff_src_) {
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
  }

 private:
  bool has_diff_src_, use_bias_;
  typename Traits::Fwd fwd_;
  typename Traits::BwdData bwd_data_;
  typename Traits::BwdWeights bwd_weights_;
  memory bias_, diff_bias_;
  LayoutAdapter fwd_src_, fwd_weights_, fwd_dst_;
  LayoutAdapter data_diff_dst_, data_weights_, data_diff_src_;
  LayoutAdapter weights_src_, weights_diff_dst_, diff_weights_;
};

}  // namespace

std::unique_ptr<Layer> MakeConv2D(const LayerBinding& b) {
  const gan::v1::Conv2D& c = b.shape->spec.conv2d();
  return std::make_unique<Convolution<ConvTraits>>(b, c.filters(), c.kernel_size(), c.stride(),
                                                   c.use_bias());
}

std::unique_ptr<Layer> MakeConv2DTranspose(const LayerBinding& b) {
  const gan::v1::Conv2DTranspose& c = b.shape->spec.conv2d_transpose();
  return std::make_unique<Convolution<DeconvTraits>>(b, c.filters(), c.kernel_size(), c.stride(),
                                                     c.use_bias());
}

}  // namespace gan
