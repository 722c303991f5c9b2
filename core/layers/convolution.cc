#include "core/layers/convolution.h"

#include <algorithm>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/layers/layout_adapter.h"
#include "core/layers/swapped_weight_grad.h"
#include "core/layers/weight_copies.h"

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
  static constexpr const char* kName = "convolution";
};

struct DeconvTraits {
  using Fwd = dnnl::deconvolution_forward;
  using BwdData = dnnl::deconvolution_backward_data;
  using BwdWeights = dnnl::deconvolution_backward_weights;
  static constexpr dnnl::algorithm kAlgorithm = dnnl::algorithm::deconvolution_direct;
  static constexpr const char* kName = "deconvolution";
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

// Whether a bf16 Conv2D computes its weight gradient as a forward convolution
// (SwappedWeightGrad) instead of oneDNN's backward-weights primitive: at stride > 1 with enough
// channels for AMX tiles. Measured at the seed discriminator's second convolution (2B = 128):
// 1.7 ms against 8.3 ms for oneDNN's AMX kernel and 5.5 ms for its gemm-based one (2 threads;
// 3.7 / 13.5 / 10.3 ms on one). At stride 1 (the seed generator's 128 -> 64) the two ways cost
// the same (15.1 vs 15.6 ms on one thread), so oneDNN's own primitive stays.
bool UseSwappedWeightGrad(const ConvGeometry& g, int64_t filters, int64_t in_channels) {
  return g.stride > 1 && std::min(filters, in_channels) >= 16;
}

// Conv2D / Conv2DTranspose with optional bias.
//   src (N, IC, H, W) -> dst (N, OC, OH, OW); weights {OC, IC, K, K} logically.
// The primitives choose their layouts (format_tag::any); the output stays in the layout the
// forward convolution produces. Weights are reordered from the store's PyTorch layout on each
// use (they change every step); inputs only when their layout differs from the chosen one.
// Mixed precision (compute bf16): src, weights and the output gradient are bf16 in the layouts
// the bf16 kernels choose (the fp32 input is converted once per forward, the fp32 output gradient
// once per backward and shared by backward data and weights when both want the same layout; the
// backward-weights pass reuses the forward's bf16 source); weights come from WeightCopies,
// converted once per change of the store; dst, the input gradient, the weight and bias gradients
// and the bias are fp32.
template <typename Traits>
class Convolution : public Layer {
 public:
  Convolution(const LayerContext& c, const ConvGeometry& g)
      : engine_(c.engine),
        training_(c.pass == Pass::kTraining),
        needs_diff_src_(c.needs_diff_src),
        use_bias_(g.use_bias),
        flip_(g.flip_kernel),
        index_(c.shape->index),
        compute_(c.compute),
        copies_(c.compute == dt::f32 ? nullptr : c.weight_copies) {
    const LayerShape& shape = *c.shape;
    const int64_t filters = g.filters, kernel = g.kernel;
    const bool use_bias = g.use_bias;
    const memory::dims weights_dims = {filters, shape.input[0], kernel, kernel};
    const memory::dims strides = {g.stride, g.stride};
    const memory::dims& pad_l = g.pad_l;
    const memory::dims& pad_r = g.pad_r;
    auto any = [](const memory::dims& d, dt type) { return memory::desc(d, type, tag::any); };
    const memory::dims src_dims = c.src_desc.dims();
    const memory::dims dst_dims = PlainDesc(shape.output, c.batch).dims();
    // What is multiplied is in the compute type; what is produced is fp32 (in fp32 the pairs
    // below are equal descriptors).
    const memory::desc src_md = any(src_dims, compute_);
    const memory::desc dst_md = any(dst_dims, dt::f32);
    const memory::desc weights_md = any(weights_dims, compute_);
    const memory::desc diff_src_md = any(src_dims, dt::f32);
    const memory::desc diff_dst_md = any(dst_dims, compute_);
    const memory::desc diff_weights_md = any(weights_dims, dt::f32);
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
    if (copies_ != nullptr) {
      fwd_weights_copy_ =
          copies_->Get(store_weights_, user_weights_md, fwd_pd_.weights_desc(), flip_ ? kernel : 0);
    } else {
      fwd_weights_ = LayoutAdapter(weights_, fwd_pd_.weights_desc(), engine_);
    }
    if (!training_) return;

    if (needs_diff_src_) {
      data_pd_ = typename Traits::BwdData::primitive_desc(
          typename Traits::BwdData::desc(Traits::kAlgorithm, diff_src_md, weights_md, diff_dst_md,
                                         strides, pad_l, pad_r),
          engine_, fwd_pd_);
      bwd_data_ = typename Traits::BwdData(data_pd_);
      if (copies_ != nullptr) {
        data_weights_copy_ = copies_->Get(store_weights_, user_weights_md, data_pd_.weights_desc(),
                                          flip_ ? kernel : 0);
      } else {
        data_weights_ = LayoutAdapter(weights_, data_pd_.weights_desc(), engine_);
      }
    }
    if (use_bias) diff_bias_ = memory(bias_md, engine_, c.params->Grad(shape.index, "bias"));
    if constexpr (std::is_same_v<Traits, ConvTraits>) {
      if (compute_ == dt::bf16 && UseSwappedWeightGrad(g, filters, shape.input[0])) {
        swapped_ = SwappedWeightGrad::Create(
            {c.batch, shape.input[0], filters, kernel, g.stride, src_dims[2], src_dims[3],
             shape.output[1], shape.output[2], pad_l[0], pad_l[1]},
            use_bias, fwd_pd_.dst_desc(), engine_);
        if (swapped_ != nullptr) return;
      }
    }
    // (The desc outlives the primitive_desc: oneDNN 2.6's implementation iterator keeps using it.)
    const typename Traits::BwdWeights::desc weights_op =
        use_bias ? typename Traits::BwdWeights::desc(Traits::kAlgorithm, src_md, diff_weights_md,
                                                     bias_md, diff_dst_md, strides, pad_l, pad_r)
                 : typename Traits::BwdWeights::desc(Traits::kAlgorithm, src_md, diff_weights_md,
                                                     diff_dst_md, strides, pad_l, pad_r);
    weights_pd_ = typename Traits::BwdWeights::primitive_desc(weights_op, engine_, fwd_pd_);
    // Where oneDNN 2.6's first choice for bf16 backward weights is measurably slow, take another
    // of its bf16 implementations (a choice by shape alone, so every run of a spec computes the
    // same numbers). Measured on a 2-core Sapphire Rapids at the presets' shapes:
    //  - a side with a single-digit channel count (the image's 1 channel, the generator's 1
    //    output channel): the AVX512_BF16 kernel is ~3x faster than AMX's (0.7 vs 2.0 ms);
    //  - stride 2 (the discriminators' second convolution, 5x5 or 7x7 outputs) when
    //    SwappedWeightGrad does not apply: the gemm-based kernel is ~1.5x faster than AMX's
    //    (5.5 vs 8.3 ms at the seed preset's 2B = 128).
    if (compute_ == dt::bf16) {
      const std::string first = weights_pd_.impl_info_str();
      const char* wanted = nullptr;
      if (std::min(filters, shape.input[0]) < 16) {
        wanted = "jit_bf16:avx512_core_bf16";
      } else if (g.stride > 1 && first.find("amx") != std::string::npos) {
        wanted = "gemm";
      }
      if (wanted != nullptr) {
        typename Traits::BwdWeights::primitive_desc candidate(weights_op, engine_, fwd_pd_);
        do {
          if (std::string(candidate.impl_info_str()).find(wanted) != std::string::npos) {
            weights_pd_ = candidate;
            break;
          }
        } while (candidate.next_impl());
      }
    }
    bwd_weights_ = typename Traits::BwdWeights(weights_pd_);
    diff_weights_ = LayoutAdapter(
        memory(user_weights_md, engine_,
               flip_ ? flipped_.data() + kernels_ * kernel * kernel : store_diff_weights_),
        weights_pd_.diff_weights_desc(), engine_);
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
    if (swapped_ != nullptr) {
      swapped_->Bind(fwd_src_.memory(), m.diff_dst, store_diff_weights_,
                     use_bias_ ? static_cast<float*>(diff_bias_.get_data_handle()) : nullptr);
      return;
    }
    // Reuse the forward's reordered source when the layouts agree (the usual case).
    weights_src_ = weights_pd_.src_desc() == fwd_pd_.src_desc()
                       ? LayoutAdapter(fwd_src_.memory(), weights_pd_.src_desc(), engine_)
                       : LayoutAdapter(m.src, weights_pd_.src_desc(), engine_);
    // Backward weights runs after backward data in the same Backward: when both want the output
    // gradient in the same layout, the one conversion serves both.
    share_diff_dst_ = needs_diff_src_ && weights_pd_.diff_dst_desc() == data_pd_.diff_dst_desc();
    if (!share_diff_dst_) {
      weights_diff_dst_ = LayoutAdapter(m.diff_dst, weights_pd_.diff_dst_desc(), engine_);
    }
  }

  void AppendPrimitives(std::vector<PrimitiveInfo>* out) const override {
    const std::string name = Traits::kName;
    out->push_back({index_, name + " forward", fwd_pd_.impl_info_str(), compute_});
    if (!training_) return;
    if (needs_diff_src_) {
      out->push_back({index_, name + " backward data", data_pd_.impl_info_str(), compute_});
    }
    if (swapped_ != nullptr) {
      out->push_back({index_, name + " backward weights (as a forward convolution)",
                      swapped_->impl(), compute_});
      return;
    }
    out->push_back({index_, name + " backward weights", weights_pd_.impl_info_str(), compute_});
  }

  void Forward(dnnl::stream& s) override {
    if (flip_ && copies_ == nullptr)
      FlipKernels(store_weights_, kernels_, kernel_, flipped_.data());
    fwd_src_.Import(s);
    if (copies_ == nullptr) fwd_weights_.Import(s);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, fwd_src_.memory()},
        {DNNL_ARG_WEIGHTS, copies_ != nullptr ? fwd_weights_copy_ : fwd_weights_.memory()},
        {DNNL_ARG_DST, dst_}};
    if (use_bias_) args[DNNL_ARG_BIAS] = bias_;
    fwd_.execute(s, args);
  }

  void Backward(dnnl::stream& s, bool param_grads) override {
    if (needs_diff_src_) {
      data_diff_dst_.Import(s);
      if (copies_ == nullptr) data_weights_.Import(s);
      bwd_data_.execute(
          s, {{DNNL_ARG_DIFF_DST, data_diff_dst_.memory()},
              {DNNL_ARG_WEIGHTS, copies_ != nullptr ? data_weights_copy_ : data_weights_.memory()},
              {DNNL_ARG_DIFF_SRC, data_diff_src_.memory()}});
      data_diff_src_.Export(s);
    }
    if (!param_grads) return;
    if (swapped_ != nullptr) {
      swapped_->Execute(s);
      return;
    }
    weights_src_.Import(s);
    if (!share_diff_dst_) weights_diff_dst_.Import(s);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, weights_src_.memory()},
        {DNNL_ARG_DIFF_DST,
         share_diff_dst_ ? data_diff_dst_.memory() : weights_diff_dst_.memory()},
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
  int index_;
  dt compute_;
  WeightCopies* copies_;  // null in fp32: weights are reordered from the store on each use
  bool share_diff_dst_ = false;
  std::unique_ptr<SwappedWeightGrad> swapped_;  // replaces bwd_weights_ when set
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
  memory fwd_weights_copy_, data_weights_copy_;  // with copies_
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
