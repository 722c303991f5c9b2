#include "core/layers/up_sampling2d.h"

namespace gan {
namespace {

// UpSampling2D: nearest neighbour, (N, C, H, W) -> (N, C, H*s, W*s), oneDNN resampling.
// Its backward sums each s x s block of the output gradient. oneDNN 2.6's resampling backward
// for plain layouts is a slow reference kernel, so the sum is computed as an s x s average
// pooling scaled by s^2 in a fused eltwise post-op (exact when s is a power of two).
class UpSampling2D : public Layer {
 public:
  explicit UpSampling2D(const LayerContext& c) {
    const int64_t s = c.shape->spec.up_sampling2d().size();
    const auto prop = c.pass == Pass::kTraining ? dnnl::prop_kind::forward_training
                                                : dnnl::prop_kind::forward_inference;
    const auto algo = dnnl::algorithm::resampling_nearest;
    const dnnl::memory::desc any_dst(PlainDesc(c.shape->output, c.batch).dims(),
                                     dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
    const dnnl::resampling_forward::primitive_desc fwd_pd(
        dnnl::resampling_forward::desc(prop, algo, c.src_desc, any_dst), c.engine);
    forward_ = dnnl::resampling_forward(fwd_pd);
    dst_desc_ = fwd_pd.dst_desc();
    if (!c.needs_diff_src) return;
    dnnl::post_ops scale_by_area;
    scale_by_area.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, static_cast<float>(s * s),
                                 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(scale_by_area);
    backward_ = dnnl::pooling_forward(dnnl::pooling_forward::primitive_desc(
        dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference,
                                    dnnl::algorithm::pooling_avg_exclude_padding,
                                    dst_desc_, c.src_desc, {s, s}, {s, s}, {0, 0}, {0, 0}),
        attr, c.engine));
  }

  dnnl::memory::desc dst_desc() const override { return dst_desc_; }

  void Bind(const LayerMemories& m) override {
    src_ = m.src, dst_ = m.dst, diff_src_ = m.diff_src, diff_dst_ = m.diff_dst;
  }

  void Forward(dnnl::stream& s) override {
    forward_.execute(s, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
  }

  void Backward(dnnl::stream& s, bool /*param_grads*/) override {
    if (!diff_src_) return;
    backward_.execute(s, {{DNNL_ARG_SRC, diff_dst_}, {DNNL_ARG_DST, diff_src_}});
  }

 private:
  dnnl::memory::desc dst_desc_;
  dnnl::memory src_, dst_, diff_src_, diff_dst_;
  dnnl::resampling_forward forward_;
  dnnl::pooling_forward backward_;  // block sums of the output gradient
};

}  // namespace

std::unique_ptr<Layer> MakeUpSampling2D(const LayerContext& c) {
  return std::make_unique<UpSampling2D>(c);
}

}  // namespace gan
