#ifndef GAN_CORE_LAYERS_LAYOUT_ADAPTER_H_
#define GAN_CORE_LAYERS_LAYOUT_ADAPTER_H_

// A memory in the layout a primitive asked for (format_tag::any) next to a user memory in a plain
// layout. When the layouts are equal it is the user memory itself and conversions are no-ops;
// otherwise it owns a buffer and a reorder primitive each way, created once.

#include "oneapi/dnnl/dnnl.hpp"

namespace gan {

class LayoutAdapter {
 public:
  LayoutAdapter() = default;
  LayoutAdapter(const dnnl::memory& user, const dnnl::memory::desc& wanted,
                const dnnl::engine& engine);

  const dnnl::memory& memory() const { return wanted_; }
  // user -> wanted layout.
  void Import(dnnl::stream& stream);
  // wanted -> user layout.
  void Export(dnnl::stream& stream);

 private:
  dnnl::memory user_, wanted_;
  dnnl::reorder to_wanted_, to_user_;
  bool same_ = true;
};

}  // namespace gan

#endif  // GAN_CORE_LAYERS_LAYOUT_ADAPTER_H_
