#include "core/engine.h"

#include "absl/strings/str_cat.h"

namespace gan {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

std::string OneDnnName() {
  const dnnl_version_t* v = dnnl_version();
  return absl::StrCat("onednn-", v->major, ".", v->minor, ".", v->patch);
}

}  // namespace gan
