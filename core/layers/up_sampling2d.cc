#include "core/layers/up_sampling2d.h"

namespace gan {
namespace {

// UpSampling2D: nearest neighbour, (N, C, H, W) -> (N, C, H*s, W*s), oneDNN resampling. Its
// backward sums each s x s block of the output gradient.
class UpSampling2D : public Layer {
 public:
  explicit UpSampling2D(const LayerBinding& b)
      : src_(b.src), dst_(b.dst), diff_src_(b.diff_src), diff_dst_(b.diff_dst) {
    const auto prop = b.pass == Pass::kTraining ? dnnl::prop_kind::forward_training
                                                : dnnl::prop_kind::forward_inference;
    const auto algo = dnnl::algorithm::resampling_nearest;
    const dnnl::resampling_forward::primitive_desc fwd_pd(
        dnnl::resampling_forward::desc(prop, algo, b.src.get_desc(), b.dst.get_desc()), b.engine);
    forward_ = dnnl::resampling_forward(fwd_pd);
    if (!diff_src_) return;
    backward_ = dnnl::resampling_backward(dnnl::resampling_backward::primitive_desc(
        dnnl::resampling_backward::desc(algo, b.src.get_desc(), b.dst.get_desc()), b.engine,
        fwd_pd));
  }

  void Forward(dnnl::stream& s) override {
    forward_.execute(s, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
  }

  void Backward(dnnl::stream& s, bool /*param_grads*/) override {
    if (!diff_src_) return;
    backward_.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst_}, {DNNL_ARG_DIFF_SRC, diff_src_}});
  }

 private:
  dnnl::memory src_, dst_, diff_src_, diff_dst_;
  dnnl::resampling_forward forward_;
  dnnl::resampling_backward backward_;
};

}  // namespace

std::unique_ptr<Layer> MakeUpSampling2D(const LayerBinding& b) {
  return std::make_unique<UpSampling2D>(b);
}

}  // namespace gan
