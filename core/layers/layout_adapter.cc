#include "core/layers/layout_adapter.h"

namespace gan {

LayoutAdapter::LayoutAdapter(const dnnl::memory& user, const dnnl::memory::desc& wanted,
                             const dnnl::engine& engine)
    : user_(user), same_(user.get_desc() == wanted) {
  if (same_) {
    wanted_ = user;
    return;
  }
  wanted_ = dnnl::memory(wanted, engine);
  to_wanted_ = dnnl::reorder(user_, wanted_);
  to_user_ = dnnl::reorder(wanted_, user_);
}

void LayoutAdapter::Import(dnnl::stream& stream) {
  if (!same_) to_wanted_.execute(stream, user_, wanted_);
}

void LayoutAdapter::Export(dnnl::stream& stream) {
  if (!same_) to_user_.execute(stream, wanted_, user_);
}

}  // namespace gan
