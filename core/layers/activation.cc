#include "core/layers/activation.h"

namespace gan {
namespace {

using dnnl::algorithm;

// Element-wise activation (N, ...) -> (N, ...). Every function is computed with an oneDNN
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
  explicit Activation(const LayerBinding& b) : src_(b.src), dst_(b.dst), diff_src_(b.diff_src),
                                               diff_dst_(b.diff_dst) {
    const gan::v1::Activation& spec = b.shape->spec.activation();
    const algorithm algo = AlgorithmFor(spec.function());
    const float alpha =
        spec.function() == gan::v1::ACTIVATION_FUNCTION_LEAKY_RELU ? spec.alpha() : 0.0f;
    const auto prop = b.pass == Pass::kTraining ? dnnl::prop_kind::forward_training
                                                : dnnl::prop_kind::forward_inference;
    const dnnl::memory::desc md = b.src.get_desc();
    const dnnl::eltwise_forward::primitive_desc fwd_pd(
        dnnl::eltwise_forward::desc(prop, algo, md, alpha, 0.0f), b.engine);
    forward_ = dnnl::eltwise_forward(fwd_pd);
    if (!diff_src_) return;
    backward_ = dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(algo, md, md, alpha, 0.0f), b.engine, fwd_pd));
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
  dnnl::memory src_, dst_, diff_src_, diff_dst_;
  dnnl::eltwise_forward forward_;
  dnnl::eltwise_backward backward_;
};

}  // namespace

std::unique_ptr<Layer> MakeActivation(const LayerBinding& b) {
  return std::make_unique<Activation>(b);
}

}  // namespace gan
