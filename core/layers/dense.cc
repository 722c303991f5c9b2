#include "core/layers/dense.h"

#include <algorithm>
#include <string>
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
//   backward weights dW = dy^T * x,   db = 1^T * dy (oneDNN 2.6's reduction is a slow reference
//                                                      kernel; a matmul with ones is not)
// Mixed precision (compute bf16): x is converted once per forward into a bf16 copy (which backward
// weights reuses), dy once per backward (serving backward data and, through the transposed view,
// backward weights); W is one plain bf16 [out, in] copy from WeightCopies (converted once per
// change of the store), which the forward sees transposed through strides as the fp32 path does.
// (oneDNN's blocked bf16 weight layouts would spare the matmuls their own packing, ~0.6 ms per
// call at 1024 x 6272, but converting fp32 weights into them costs ~3 ms, twice per step.)
// y, dx and dW are fp32; db = 1^T * dy stays an fp32 matmul on the fp32 dy (it is tiny).
class Dense : public Layer {
 public:
  explicit Dense(const LayerContext& c)
      : engine_(c.engine),
        training_(c.pass == Pass::kTraining),
        use_bias_(c.shape->spec.dense().use_bias()),
        index_(c.shape->index),
        compute_(c.compute) {
    if (compute_ != dt::f32) {
      InitLowPrecision(c);
      return;
    }
    const int64_t n = c.batch, in = c.shape->input[0], out = c.shape->output[0];
    const int index = c.shape->index;
    const memory::desc x_md({n, in}, dt::f32, tag::ab);
    const memory::desc y_md({n, out}, dt::f32, tag::ab);
    const memory::desc w_t_md({in, out}, dt::f32, memory::dims{1, in});  // W^T view of [out, in]
    const memory::desc bias_md({1, out}, dt::f32, tag::ab);
    dst_desc_ = y_md;
    weights_t_ = memory(w_t_md, engine_, c.params->Value(index, "weight"));
    if (use_bias_) bias_ = memory(bias_md, engine_, c.params->Value(index, "bias"));
    forward_ = dnnl::matmul(dnnl::matmul::primitive_desc(
        use_bias_ ? dnnl::matmul::desc(x_md, w_t_md, bias_md, y_md)
                  : dnnl::matmul::desc(x_md, w_t_md, y_md),
        engine_));
    if (!training_) return;

    if (c.needs_diff_src) {
      const memory::desc w_md({out, in}, dt::f32, tag::ab);
      weights_ = memory(w_md, engine_, c.params->Value(index, "weight"));
      backward_data_ =
          dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(y_md, w_md, x_md), engine_));
    }
    dy_t_md_ = memory::desc({out, n}, dt::f32, memory::dims{1, out});  // dy^T view
    const memory::desc dw_md({out, in}, dt::f32, tag::ab);
    diff_weights_ = memory(dw_md, engine_, c.params->Grad(index, "weight"));
    backward_weights_ = dnnl::matmul(
        dnnl::matmul::primitive_desc(dnnl::matmul::desc(dy_t_md_, x_md, dw_md), engine_));
    if (use_bias_) {
      diff_bias_ = memory(bias_md, engine_, c.params->Grad(index, "bias"));
      const memory::desc ones_md({1, n}, dt::f32, tag::ab);
      ones_ = memory(ones_md, engine_);
      std::fill_n(static_cast<float*>(ones_.get_data_handle()), n, 1.0f);
      bias_grad_ = dnnl::matmul(
          dnnl::matmul::primitive_desc(dnnl::matmul::desc(ones_md, y_md, bias_md), engine_));
    }
  }

  dnnl::memory::desc dst_desc() const override { return dst_desc_; }

  void Bind(const LayerMemories& m) override {
    src_ = m.src;
    dst_ = m.dst;
    if (compute_ != dt::f32) {
      src_convert_ = dnnl::reorder(src_, src_low_);
      if (training_) diff_dst_convert_ = dnnl::reorder(m.diff_dst, diff_dst_low_);
    }
    if (!training_) return;
    diff_dst_ = m.diff_dst;
    diff_src_ = m.diff_src;
    diff_dst_t_ = memory(dy_t_md_, engine_,
                         (compute_ != dt::f32 ? diff_dst_low_ : m.diff_dst).get_data_handle());
  }

  void AppendPrimitives(std::vector<PrimitiveInfo>* out) const override {
    out->push_back({index_, "matmul forward", ImplInfo(forward_), compute_});
    if (!training_) return;
    if (backward_data_) {
      out->push_back({index_, "matmul backward data", ImplInfo(backward_data_), compute_});
    }
    out->push_back({index_, "matmul backward weights", ImplInfo(backward_weights_), compute_});
  }

  void Forward(dnnl::stream& s) override {
    if (compute_ != dt::f32) src_convert_.execute(s, src_, src_low_);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, compute_ != dt::f32 ? src_low_ : src_},
                                            {DNNL_ARG_WEIGHTS, weights_t_},
                                            {DNNL_ARG_DST, dst_}};
    if (use_bias_) args[DNNL_ARG_BIAS] = bias_;
    forward_.execute(s, args);
  }

  void Backward(dnnl::stream& s, bool param_grads) override {
    const bool low = compute_ != dt::f32;
    if (low && (diff_src_ || param_grads)) diff_dst_convert_.execute(s, diff_dst_, diff_dst_low_);
    if (diff_src_) {
      backward_data_.execute(s, {{DNNL_ARG_SRC, low ? diff_dst_low_ : diff_dst_},
                                 {DNNL_ARG_WEIGHTS, weights_},
                                 {DNNL_ARG_DST, diff_src_}});
    }
    if (!param_grads) return;
    backward_weights_.execute(s, {{DNNL_ARG_SRC, diff_dst_t_},
                                  {DNNL_ARG_WEIGHTS, low ? src_low_ : src_},
                                  {DNNL_ARG_DST, diff_weights_}});
    if (use_bias_) {
      bias_grad_.execute(
          s, {{DNNL_ARG_SRC, ones_}, {DNNL_ARG_WEIGHTS, diff_dst_}, {DNNL_ARG_DST, diff_bias_}});
    }
  }

 private:
  // The bf16 primitives, their bf16 copies of x and dy, and the weight copies.
  void InitLowPrecision(const LayerContext& c) {
    const int64_t n = c.batch, in = c.shape->input[0], out = c.shape->output[0];
    const dt low = compute_;
    const memory::desc x_md({n, in}, dt::f32, tag::ab);
    const memory::desc y_md({n, out}, dt::f32, tag::ab);
    const memory::desc bias_md({1, out}, dt::f32, tag::ab);
    const memory::desc x_low_md({n, in}, low, tag::ab);
    const memory::desc w_low_md({out, in}, low, tag::ab);
    const memory::desc w_t_low_md({in, out}, low, memory::dims{1, in});  // its W^T view
    dst_desc_ = y_md;
    src_low_ = memory(x_low_md, engine_);
    weights_ = c.weight_copies->Get(c.params->Value(index_, "weight"),
                                    memory::desc({out, in}, dt::f32, tag::ab), w_low_md);
    weights_t_ = memory(w_t_low_md, engine_, weights_.get_data_handle());
    if (use_bias_) bias_ = memory(bias_md, engine_, c.params->Value(index_, "bias"));
    forward_ = dnnl::matmul(dnnl::matmul::primitive_desc(
        use_bias_ ? dnnl::matmul::desc(x_low_md, w_t_low_md, bias_md, y_md)
                  : dnnl::matmul::desc(x_low_md, w_t_low_md, y_md),
        engine_));
    if (!training_) return;

    const memory::desc dy_low_md({n, out}, low, tag::ab);
    diff_dst_low_ = memory(dy_low_md, engine_);
    if (c.needs_diff_src) {
      backward_data_ = dnnl::matmul(
          dnnl::matmul::primitive_desc(dnnl::matmul::desc(dy_low_md, w_low_md, x_md), engine_));
    }
    dy_t_md_ = memory::desc({out, n}, low, memory::dims{1, out});  // dy^T view of the bf16 dy
    const memory::desc dw_md({out, in}, dt::f32, tag::ab);
    diff_weights_ = memory(dw_md, engine_, c.params->Grad(index_, "weight"));
    backward_weights_ = dnnl::matmul(
        dnnl::matmul::primitive_desc(dnnl::matmul::desc(dy_t_md_, x_low_md, dw_md), engine_));
    if (use_bias_) {
      diff_bias_ = memory(bias_md, engine_, c.params->Grad(index_, "bias"));
      const memory::desc ones_md({1, n}, dt::f32, tag::ab);
      ones_ = memory(ones_md, engine_);
      std::fill_n(static_cast<float*>(ones_.get_data_handle()), n, 1.0f);
      bias_grad_ = dnnl::matmul(
          dnnl::matmul::primitive_desc(dnnl::matmul::desc(ones_md, y_md, bias_md), engine_));
    }
  }

  dnnl::engine engine_;
  bool training_, use_bias_;
  int index_;
  dt compute_;
  memory src_low_, diff_dst_low_;  // bf16 copies of x and dy (mixed precision only)
  dnnl::reorder src_convert_, diff_dst_convert_;
  memory::desc dst_desc_, dy_t_md_;
  memory src_, dst_, weights_t_, weights_, bias_;
  memory diff_dst_, diff_dst_t_, diff_src_, diff_weights_, diff_bias_;
  dnnl::matmul forward_, backward_data_, backward_weights_;
  memory ones_;
  dnnl::matmul bias_grad_;
};

}  // namespace

std::unique_ptr<Layer> MakeDense(const LayerContext& c) { return std::make_unique<Dense>(c); }

}  // namespace gan
