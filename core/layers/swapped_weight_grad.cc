#include "core/layers/swapped_weight_grad.h"

#include <algorithm>
#include <vector>

namespace gan {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// (a, b, c, d) -> (b, a, c, d)
const std::vector<int> kSwap01 = {1, 0, 2, 3};

}  // namespace

std::unique_ptr<SwappedWeightGrad> SwappedWeightGrad::Create(const Geometry& g, bool with_bias,
                                                             const memory::desc& diff_dst,
                                                             const dnnl::engine& engine) {
  const memory::desc nhwc_diff_dst({g.batch, g.out_channels, g.out_height, g.out_width}, dt::f32,
                                   tag::acdb);
  if (with_bias && diff_dst != nhwc_diff_dst) return nullptr;
  std::unique_ptr<SwappedWeightGrad> w(new SwappedWeightGrad(g, engine));
  const int64_t s = g.stride, k = g.kernel;
  // The last input row a tap reads is s * (OH - 1) + K - 1 - pad_top; later rows are cropped.
  w->used_height_ = std::min(g.height, s * (g.out_height - 1) + k - g.pad_top);
  w->used_width_ = std::min(g.width, s * (g.out_width - 1) + k - g.pad_left);
  if (w->used_height_ < 1 || w->used_width_ < 1) return nullptr;
  // Right padding that makes the output K x K: K - 1 + extent of the dilated dy kernel - input.
  const memory::dims pad_l = {g.pad_top, g.pad_left};
  const memory::dims pad_r = {k + s * (g.out_height - 1) - g.pad_top - w->used_height_,
                              k + s * (g.out_width - 1) - g.pad_left - w->used_width_};
  auto any = [](const memory::dims& d, dt type) { return memory::desc(d, type, tag::any); };
  try {
    w->pd_ = dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
            any({g.in_channels, g.batch, w->used_height_, w->used_width_}, dt::bf16),
            any({g.out_channels, g.batch, g.out_height, g.out_width}, dt::bf16),
            any({g.in_channels, g.out_channels, k, k}, dt::f32), {1, 1}, {s - 1, s - 1}, pad_l,
            pad_r),
        engine);
    if (w->impl().rfind("ref", 0) == 0) return nullptr;
    w->conv_ = dnnl::convolution_forward(w->pd_);
    if (with_bias) {
      const int64_t rows = g.batch * g.out_height * g.out_width;
      const memory::desc ones_md({1, rows}, dt::f32, tag::ab);
      w->ones_ = memory(ones_md, engine);
      std::fill_n(static_cast<float*>(w->ones_.get_data_handle()), rows, 1.0f);
      w->bias_sum_ = dnnl::matmul(dnnl::matmul::primitive_desc(
          dnnl::matmul::desc(ones_md, memory::desc({rows, g.out_channels}, dt::f32, tag::ab),
                             memory::desc({1, g.out_channels}, dt::f32, tag::ab)),
          engine));
    }
  } catch (const dnnl::error&) {
    return nullptr;
  }
  return w;
}

void SwappedWeightGrad::Bind(const memory& src_low, const memory& diff_dst, float* diff_weights,
                             float* diff_bias) {
  memory::desc src_md = src_low.get_desc();
  if (used_height_ < g_.height || used_width_ < g_.width) {
    src_md =
        src_md.submemory_desc({g_.batch, g_.in_channels, used_height_, used_width_}, {0, 0, 0, 0});
  }
  src_view_ = memory(src_md.permute_axes(kSwap01), engine_, src_low.get_data_handle());
  src_ = memory(pd_.src_desc(), engine_);
  src_reorder_ = dnnl::reorder(src_view_, src_);

  diff_dst_view_ =
      memory(diff_dst.get_desc().permute_axes(kSwap01), engine_, diff_dst.get_data_handle());
  weights_ = memory(pd_.weights_desc(), engine_);
  diff_dst_reorder_ = dnnl::reorder(diff_dst_view_, weights_);

  dst_ = memory(pd_.dst_desc(), engine_);
  dst_view_ = memory(pd_.dst_desc().permute_axes(kSwap01), engine_, dst_.get_data_handle());
  diff_weights_ =
      memory({{g_.out_channels, g_.in_channels, g_.kernel, g_.kernel}, dt::f32, tag::oihw}, engine_,
             diff_weights);
  dst_reorder_ = dnnl::reorder(dst_view_, diff_weights_);

  if (bias_sum_ && diff_bias != nullptr) {
    diff_dst_rows_ =
        memory({{g_.batch * g_.out_height * g_.out_width, g_.out_channels}, dt::f32, tag::ab},
               engine_, diff_dst.get_data_handle());
    diff_bias_ = memory({{1, g_.out_channels}, dt::f32, tag::ab}, engine_, diff_bias);
  }
}

void SwappedWeightGrad::Execute(dnnl::stream& s) {
  src_reorder_.execute(s, src_view_, src_);
  diff_dst_reorder_.execute(s, diff_dst_view_, weights_);
  conv_.execute(s, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_}});
  dst_reorder_.execute(s, dst_view_, diff_weights_);
  if (diff_bias_) {
    bias_sum_.execute(
        s, {{DNNL_ARG_SRC, ones_}, {DNNL_ARG_WEIGHTS, diff_dst_rows_}, {DNNL_ARG_DST, diff_bias_}});
  }
}

}  // namespace gan
