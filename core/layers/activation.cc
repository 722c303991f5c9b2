#include "core/layers/activation.h"

namespace gan {
namespace {

using dnnl::algorithm;

// Element-wise activation (N, ...) -> (N, ...) in the input's layout, in place when the network
// allows it. Every function is computed with an oneDNN
// *_use_dst_for_bwd algorithm, so backward needs only the saved output (the same form a post-op
// fused into a convolution would use). LeakyReLU is oneDNN's relu with a negative slope alpha.
algorithm AlgorithmFor(gan::v1::ActivationFunction f) {
  switch (f) {
    case gan::v1::ACTIVATION_FUNCTION_RELU:
    case gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU:
      return algorithm::eltwise_relu_use_dst_for_bwd;
    case gan::v1::ACTIVATION_FUNCTION_SIGMOID:
      return algorithm::eltwise_logistic_use_dst_for_bwd;
    case gan::v1::ACTIVATION_FUNCTION_TANH:
      return algorithm::eltwise_tanh_use_dst_for_bwd;
    default:  // linear is a view; validation rejects the rest
      return algorithm::eltwise_linear;
  }
}

class Activation : public Layer {
 public:
  explicit Activation(const LayerContext& c) : md_(c.src_desc) {
    const gan::v1::Activation& spec = c.shape->spec.activation();
    const algorithm algo = AlgorithmFor(spec.function());
    const float alpha =
        spec.function() == gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU ? spec.alpha() : 0.0f;
    const auto prop = c.pass == Pass::kTraining ? dnnl::prop_kind::forward_training
                                                : dnnl::prop_kind::forward_inference;
    const dnnl::eltwise_forward::primitive_desc fwd_pd(
        dnnl::eltwise_forward::desc(prop, algo, md_, alpha, 0.0f), c.engine);
    forward_ = dnnl::eltwise_forward(fwd_pd);
    if (!c.needs_diff_src) return;
    backward_ = dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(algo, md_, md_, alpha, 0.0f), c.engine, fwd_pd));
  }

  dnnl::memory::desc dst_desc() const override { return md_; }
  bool can_run_in_place() const override { return true; }
  bool backward_reads_dst() const override { return true; }

  void Bind(const LayerMemories& m) override {
    src_ = m.src, dst_ = m.dst, diff_src_ = m.diff_src, diff_dst_ = m.diff_dst;
  }

  void Forward(dnnl::stream& s) override {
    forward_.execute(s, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
  }

  void Backward(dnnl::stream& s, bool /*param_grads*/) override {
    if (!diff_src_) return;
    backward_.execute(
        s, {{DNNL_ARG_DST, dst_}, {DNNL_ARG_DIFF_DST, diff_dst_}, {DNNL_ARG_DIFF_SRC, diff_src_}});
  }

 private:
  dnnl::memory::desc md_;
  dnnl::memory src_, dst_, diff_src_, diff_dst_;
  dnnl::eltwise_forward forward_;
  dnnl::eltwise_backward backward_;
};

}  // namespace

std::unique_ptr<Layer> MakeActivation(const LayerContext& c) {
  return std::make_unique<Activation>(c);
}

}  // namespace gan
