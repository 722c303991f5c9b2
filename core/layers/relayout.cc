#include "core/layers/relayout.h"

namespace gan {
namespace {

class Relayout : public Layer {
 public:
  Relayout(const LayerContext& c, const dnnl::memory::desc& dst)
      : engine_(c.engine), dst_desc_(dst) {}

  dnnl::memory::desc dst_desc() const override { return dst_desc_; }

  void Bind(const LayerMemories& m) override {
    // Reorders only change layout, so the plain side is seen with the other side's dims.
    const bool plain_dst = dst_desc_ == PlainOf(dst_desc_);
    auto plain_view = [&](const dnnl::memory& plain, const dnnl::memory& other) {
      return dnnl::memory(PlainOf(other.get_desc()), engine_, plain.get_data_handle());
    };
    from_ = plain_dst ? m.src : plain_view(m.src, m.dst);
    to_ = plain_dst ? plain_view(m.dst, m.src) : m.dst;
    forward_ = dnnl::reorder(from_, to_);
    if (m.diff_src) {
      diff_from_ = plain_dst ? plain_view(m.diff_dst, m.diff_src) : m.diff_dst;
      diff_to_ = plain_dst ? m.diff_src : plain_view(m.diff_src, m.diff_dst);
      backward_ = dnnl::reorder(diff_from_, diff_to_);
    }
  }

  void Forward(dnnl::stream& s) override { forward_.execute(s, from_, to_); }

  void Backward(dnnl::stream& s, bool /*param_grads*/) override {
    if (backward_) backward_.execute(s, diff_from_, diff_to_);
  }

 private:
  static dnnl::memory::desc PlainOf(const dnnl::memory::desc& md) {
    const dnnl::memory::dims dims = md.dims();
    using tag = dnnl::memory::format_tag;
    return dnnl::memory::desc(dims, dnnl::memory::data_type::f32,
                              dims.size() == 2 ? tag::ab : tag::abcd);
  }

  dnnl::engine engine_;
  dnnl::memory::desc dst_desc_;
  dnnl::memory from_, to_, diff_from_, diff_to_;
  dnnl::reorder forward_, backward_;
};

}  // namespace

std::unique_ptr<Layer> MakeRelayout(const LayerContext& c, const dnnl::memory::desc& dst) {
  return std::make_unique<Relayout>(c, dst);
}

}  // namespace gan
