#include "core/parameter_store.h"

#include "absl/strings/str_cat.h"

namespace gan {

ParameterStore::ParameterStore(std::string model_name, const std::vector<LayerShape>& layers,
                               Gradients gradients)
    : model_name_(std::move(model_name)) {
  int64_t trainable_size = 0, state_size = 0;
  for (const LayerShape& layer : layers) {
    for (const ParamShape& p : layer.params) {
      int64_t& size = p.trainable ? trainable_size : state_size;
      entries_.push_back({absl::StrCat(model_name_, ".", layer.index, ".", p.name), layer.index,
                          p.name, p.dims, p.trainable, size});
      size += NumElements(p.dims);
    }
    if (layer.spec.has_batch_norm()) batches_tracked_[layer.index] = 0;
  }
  trainable_.assign(trainable_size, 0.0f);
  if (gradients == Gradients::kAllocate) grads_.assign(trainable_size, 0.0f);
  state_.assign(state_size, 0.0f);
  // BatchNorm starts as the identity: running variance 1.
  for (const Entry& e : entries_) {
    if (e.param == "running_var") std::fill_n(Data(e), NumElements(e.dims), 1.0f);
  }
}

const ParameterStore::Entry* ParameterStore::Find(int layer, const std::string& param) const {
  for (const Entry& e : entries_) {
    if (e.layer == layer && e.param == param) return &e;
  }
  return nullptr;
}

float* ParameterStore::Value(int layer, const std::string& param) {
  const Entry* e = Find(layer, param);
  return e == nullptr ? nullptr : Data(*e);
}

float* ParameterStore::Grad(int layer, const std::string& param) {
  const Entry* e = Find(layer, param);
  return (e == nullptr || !e->trainable || grads_.empty()) ? nullptr : grads_.data() + e->offset;
}

}  // namespace gan
