#ifndef GAN_CORE_LAYERS_SWAPPED_WEIGHT_GRAD_H_
#define GAN_CORE_LAYERS_SWAPPED_WEIGHT_GRAD_H_

// The weight gradient of a bf16 convolution computed as a forward convolution, for the shapes
// where oneDNN 2.6's AMX backward-weights kernel is slow (stride 2 with a small output: the
// discriminators' second convolution takes ~8 ms at the seed preset's 2B = 128 that way, ~1.7 ms
// this way).
//
// With src x (N, IC, H, W), output gradient dy (N, OC, OH, OW), stride s and padding p,
//   dW[oc, ic, ky, kx] = sum_{n, oy, ox} dy[n, oc, oy, ox] * x[n, ic, s*oy + ky - p, s*ox + kx - p]
// which is a forward convolution in which the batch and channel axes trade places:
//   source  x' (IC, N, H, W)      "batch" IC, "channels" N
//   weights dy' (OC, N, OH, OW)   a kernel of OH x OW taps, dilated by s - 1
//   output  dW' (IC, OC, K, K)
// with the same left padding and the right padding that makes the output K x K (input rows past
// the last one any tap reads are cropped). The axis swaps are permuted memory descriptors, so
// each side is one oneDNN reorder (x' from the bf16 copy the forward already made, dy' from the
// fp32 gradient, converting it to bf16 on the way; dW' into the store's fp32 OIHW); products are
// bf16 and sums fp32 as in oneDNN's own backward-weights kernels. The bias gradient, the sum of
// dy over (n, oy, ox), is an fp32 matmul of ones with the nhwc gradient.

#include <cstdint>
#include <memory>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"

namespace gan {

class SwappedWeightGrad {
 public:
  struct Geometry {
    int64_t batch, in_channels, out_channels, kernel, stride;
    int64_t height, width, out_height, out_width;
    int64_t pad_top, pad_left;
  };

  // Null when the geometry does not fit (the bias needs an nhwc `diff_dst` layout) or oneDNN
  // would run the swapped convolution on a reference kernel.
  static std::unique_ptr<SwappedWeightGrad> Create(const Geometry& g, bool with_bias,
                                                   const dnnl::memory::desc& diff_dst,
                                                   const dnnl::engine& engine);

  // `src_low`: the bf16 source the forward convolution computed with (any layout), still valid
  // when Execute runs; `diff_dst`: the fp32 output gradient (the layout given to Create);
  // `diff_weights`: fp32 OIHW; `diff_bias`: fp32, or null without bias.
  void Bind(const dnnl::memory& src_low, const dnnl::memory& diff_dst, float* diff_weights,
            float* diff_bias);
  void Execute(dnnl::stream& stream);

  std::string impl() const { return pd_.impl_info_str(); }

 private:
  SwappedWeightGrad(const Geometry& g, const dnnl::engine& engine) : g_(g), engine_(engine) {}

  Geometry g_;
  dnnl::engine engine_;
  int64_t used_height_ = 0, used_width_ = 0;  // input rows/columns some tap reads
  dnnl::convolution_forward::primitive_desc pd_;
  dnnl::convolution_forward conv_;
  dnnl::memory src_, weights_, dst_;  // the swapped convolution's operands
  dnnl::memory src_view_, diff_dst_view_, dst_view_, diff_weights_;
  dnnl::reorder src_reorder_, diff_dst_reorder_, dst_reorder_;
  dnnl::matmul bias_sum_;
  dnnl::memory ones_, diff_dst_rows_, diff_bias_;
};

}  // namespace gan

#endif  // GAN_CORE_LAYERS_SWAPPED_WEIGHT_GRAD_H_
