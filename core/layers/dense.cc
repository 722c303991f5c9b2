#include "core/layers/dense.h"

#include <unordered_map>

namespace gan {
namespace {

using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// Dense: y (N, out) = x (N, in) * W^T + b, with W [out, in] (PyTorch layout), as oneDNN matmuls
// on plain row-major buffers (transposes are expressed through strides, never copied):
//   forward          y  = x   * W^T   (+ b)
//   backward data    dx = dy  * W
//   backward weights dW = dy^T * x,   db = sum over the batch of dy (reduction primitive)
class Dense : public Layer {
 public:
  explicit Dense(const LayerBinding& b) : use_bias_(b.shape->spec.dense().use_bias()) {
    const int64_t n = b.batch, in = b.shape->input[0], out = b.shape->output[0];
    const int index = b.shape->index;
    const memory::desc x_md({n, in}, dt::f32, tag::ab);
    const memory::desc y_md({n, out}, dt::f32, tag::ab);
    const memory::desc w_t_md({in, out}, dt::f32, memory::dims{1, in});  // W^T view of [out, in]
    const memory::desc bias_md({1, out}, dt::f32, tag::ab);
    src_ = memory(x_md, b.engine, b.src.get_data_handle());
    dst_ = memory(y_md, b.engine, b.dst.get_data_handle());
    weights_t_ = memory(w_t_md, b.engine, b.params->Value(index, "weight"));
    if (use_bias_) bias_ = memory(bias_md, b.engine, b.params->Value(index, "bias"));
    forward_ = dnnl::matmul(dnnl::matmul::primitive_desc(
        use_bias_ ? dnnl::matmul::desc(x_md, w_t_md, bias_md, y_md)
                  : dnnl::matmul::desc(x_md, w_t_md, y_md),
        b.engine));
    if (b.pass == Pass::kInference) return;

    diff_dst_ = memory(y_md, b.engine, b.diff_dst.get_data_handle());
    if (b.diff_src) {
      const memory::desc w_md({out, in}, dt::f32, tag::ab);
      weights_ = memory(w_md, b.engine, b.params->Value(index, "weight"));
      diff_src_ = memory(x_md, b.engine, b.diff_src.get_data_handle());
      backward_data_ =
          dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(y_md, w_md, x_md), b.engine));
    }
    const memory::desc dy_t_md({out, n}, dt::f32, memory::dims{1, out});  // dy^T view
    const memory::desc dw_md({out, in}, dt::f32, tag::ab);
    diff_dst_t_ = memory(dy_t_md, b.engine, b.diff_dst.get_data_handle());
    diff_weights_ = memory(dw_md, b.engine, b.params->Grad(index, "weight"));
    backward_weights_ = dnnl::matmul(
        dnnl::matmul::primitive_desc(dnnl::matmul::desc(dy_t_md, x_md, dw_md), b.engine));
    if (use_bias_) {
      diff_bias_ = memory(bias_md, b.engine, b.params->Grad(index, "bias"));
      bias_grad_ = dnnl::reduction(dnnl::reduction::primitive_desc(
          dnnl::reduction::desc(dnnl::algorithm::reduction_sum, y_md, bias_md, 0.f, 0.f),
          b.engine));
    }
  }

  void Forward(dnnl::stream& s) override {
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, weights_t_}, {DNNL_ARG_DST, dst_}};
    if (use_bias_) args[DNNL_ARG_BIAS] = bias_;
    forward_.execute(s, args);
  }

  void Backward(dnnl::stream& s, bool param_grads) override {
    if (diff_src_) {
      backward_data_.execute(
          s, {{DNNL_ARG_SRC, diff_dst_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, diff_src_}});
    }
    if (!param_grads) return;
    backward_weights_.execute(
        s, {{DNNL_ARG_SRC, diff_dst_t_}, {DNNL_ARG_WEIGHTS, src_}, {DNNL_ARG_DST, diff_weights_}});
    if (use_bias_) bias_grad_.execute(s, {{DNNL_ARG_SRC, diff_dst_}, {DNNL_ARG_DST, diff_bias_}});
  }

 private:
  bool use_bias_;
  memory src_, dst_, weights_t_, weights_, bias_;
  memory diff_dst_, diff_dst_t_, diff_src_, diff_weights_, diff_bias_;
  dnnl::matmul forward_, backward_data_, backward_weights_;
  dnnl::reduction bias_grad_;
};

}  // namespace

std::unique_ptr<Layer> MakeDense(const LayerBinding& b) { return std::make_unique<Dense>(b); }

}  // namespace gan
