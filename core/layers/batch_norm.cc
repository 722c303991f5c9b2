#include "core/layers/batch_norm.h"

#include <unordered_map>

namespace gan {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using flags = dnnl::normalization_flags;

// BatchNorm over channels of (N, C, H, W) (in the input's layout, blocked or plain) or features
// of (N, F) (seen by oneDNN as (N, F, 1, 1)).
// Training: normalizes with the batch statistics and updates the running ones the PyTorch way,
//   running = (1 - momentum) * running + momentum * batch, with the variance made unbiased by
//   n / (n - 1), n = N * H * W (oneDNN reports the biased one), and num_batches_tracked += 1.
// Inference: normalizes with the running statistics.
class BatchNorm : public Layer {
 public:
  explicit BatchNorm(const LayerContext& c)
      : engine_(c.engine),
        training_(c.pass == Pass::kTraining),
        momentum_(c.shape->spec.batch_norm().momentum()),
        batches_tracked_(&c.params->BatchesTracked(c.shape->index)),
        dst_desc_(c.src_desc) {
    const Dims& in = c.shape->input;
    channels_ = in[0];
    count_ = c.batch * (in.size() == 3 ? in[1] * in[2] : 1);
    // (N, F) as (N, F, 1, 1): nchw and nhwc are the same bytes there. fp32 keeps nchw (its
    // results are pinned bit for bit); mixed precision, which rounds anyway, takes nhwc, whose
    // vectorized kernel is several times faster than oneDNN's generic planar one at F = 6272.
    data_md_ = in.size() == 3 ? c.src_desc
                              : memory::desc({c.batch, channels_, 1, 1}, dt::f32,
                                             c.compute == dt::f32 ? tag::nchw : tag::nhwc);
    const memory::desc stat_md({channels_}, dt::f32, tag::a);
    const int index = c.shape->index;
    scale_ = memory(stat_md, engine_, c.params->Value(index, "weight"));
    shift_ = memory(stat_md, engine_, c.params->Value(index, "bias"));
    running_mean_ = memory(stat_md, engine_, c.params->Value(index, "running_mean"));
    running_var_ = memory(stat_md, engine_, c.params->Value(index, "running_var"));
    const float eps = c.shape->spec.batch_norm().epsilon();

    if (!training_) {
      forward_ = dnnl::batch_normalization_forward(
          dnnl::batch_normalization_forward::primitive_desc(
              dnnl::batch_normalization_forward::desc(
                  dnnl::prop_kind::forward_inference, data_md_, eps,
                  flags::use_global_stats | flags::use_scale | flags::use_shift),
              engine_));
      return;
    }
    const dnnl::batch_normalization_forward::primitive_desc fwd_pd(
        dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training, data_md_, eps,
                                                flags::use_scale | flags::use_shift),
        engine_);
    forward_ = dnnl::batch_normalization_forward(fwd_pd);
    mean_ = memory(stat_md, engine_);
    variance_ = memory(stat_md, engine_);
    // oneDNN's backward always produces the scale/shift gradients; when the caller does not want
    // them they go to scratch buffers.
    diff_scale_ = memory(stat_md, engine_, c.params->Grad(index, "weight"));
    diff_shift_ = memory(stat_md, engine_, c.params->Grad(index, "bias"));
    scratch_diff_scale_ = memory(stat_md, engine_);
    scratch_diff_shift_ = memory(stat_md, engine_);
    if (!c.needs_diff_src) scratch_diff_src_ = memory(data_md_, engine_);
    backward_ = dnnl::batch_normalization_backward(
        dnnl::batch_normalization_backward::primitive_desc(
            dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, data_md_,
                                                     data_md_, eps,
                                                     flags::use_scale | flags::use_shift),
            engine_, fwd_pd));
  }

  dnnl::memory::desc dst_desc() const override { return dst_desc_; }

  void Bind(const LayerMemories& m) override {
    auto view = [&](const memory& x) { return memory(data_md_, engine_, x.get_data_handle()); };
    src_ = view(m.src);
    dst_ = view(m.dst);
    if (!training_) return;
    diff_dst_ = view(m.diff_dst);
    diff_src_ = m.diff_src ? view(m.diff_src) : scratch_diff_src_;
  }

  void Forward(dnnl::stream& s) override {
    if (!training_) {
      forward_.execute(s, {{DNNL_ARG_SRC, src_},
                           {DNNL_ARG_DST, dst_},
                           {DNNL_ARG_SCALE, scale_},
                           {DNNL_ARG_SHIFT, shift_},
                           {DNNL_ARG_MEAN, running_mean_},
                           {DNNL_ARG_VARIANCE, running_var_}});
      return;
    }
    forward_.execute(s, {{DNNL_ARG_SRC, src_},
                         {DNNL_ARG_DST, dst_},
                         {DNNL_ARG_SCALE, scale_},
                         {DNNL_ARG_SHIFT, shift_},
                         {DNNL_ARG_MEAN, mean_},
                         {DNNL_ARG_VARIANCE, variance_}});
    s.wait();
    const float* mean = static_cast<const float*>(mean_.get_data_handle());
    const float* var = static_cast<const float*>(variance_.get_data_handle());
    float* running_mean = static_cast<float*>(running_mean_.get_data_handle());
    float* running_var = static_cast<float*>(running_var_.get_data_handle());
    const float unbias = count_ > 1 ? static_cast<float>(count_) / (count_ - 1) : 1.0f;
    for (int64_t c = 0; c < channels_; ++c) {
      running_mean[c] = (1 - momentum_) * running_mean[c] + momentum_ * mean[c];
      running_var[c] = (1 - momentum_) * running_var[c] + momentum_ * var[c] * unbias;
    }
    ++*batches_tracked_;
  }

  void Backward(dnnl::stream& s, bool param_grads) override {
    backward_.execute(s, {{DNNL_ARG_SRC, src_},
                          {DNNL_ARG_MEAN, mean_},
                          {DNNL_ARG_VARIANCE, variance_},
                          {DNNL_ARG_DIFF_DST, diff_dst_},
                          {DNNL_ARG_SCALE, scale_},
                          {DNNL_ARG_SHIFT, shift_},
                          {DNNL_ARG_DIFF_SRC, diff_src_},
                          {DNNL_ARG_DIFF_SCALE, param_grads ? diff_scale_ : scratch_diff_scale_},
                          {DNNL_ARG_DIFF_SHIFT, param_grads ? diff_shift_ : scratch_diff_shift_}});
  }

 private:
  dnnl::engine engine_;
  bool training_;
  float momentum_;
  int64_t* batches_tracked_;
  int64_t channels_ = 0, count_ = 0;
  memory::desc dst_desc_, data_md_;
  memory src_, dst_, scale_, shift_, running_mean_, running_var_, mean_, variance_;
  memory diff_dst_, diff_src_, diff_scale_, diff_shift_;
  memory scratch_diff_scale_, scratch_diff_shift_, scratch_diff_src_;
  dnnl::batch_normalization_forward forward_;
  dnnl::batch_normalization_backward backward_;
};

}  // namespace

std::unique_ptr<Layer> MakeBatchNorm(const LayerContext& c) {
  return std::make_unique<BatchNorm>(c);
}

}  // namespace gan
