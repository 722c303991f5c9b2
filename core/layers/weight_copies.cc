#include "core/layers/weight_copies.h"

namespace gan {

void FlipKernels(const float* in, int64_t kernels, int64_t k, float* out) {
  for (int64_t n = 0; n < kernels; ++n, in += k * k, out += k * k) {
    for (int64_t i = 0; i < k * k; ++i) out[i] = in[k * k - 1 - i];
  }
}

WeightCopies::WeightCopies(const ParameterStore* store, const dnnl::engine& engine)
    : store_(store), engine_(engine) {}

dnnl::memory WeightCopies::Get(const float* values, const dnnl::memory::desc& user,
                               const dnnl::memory::desc& wanted, int64_t flip_kernel) {
  for (const auto& c : copies_) {
    if (c->values == values && c->user == user && c->wanted == wanted &&
        c->flip_kernel == flip_kernel) {
      return c->copy;
    }
  }
  auto c = std::make_unique<Copy>();
  c->values = values;
  c->user = user;
  c->wanted = wanted;
  c->flip_kernel = flip_kernel;
  void* source = const_cast<float*>(values);
  if (flip_kernel > 0) {
    c->flipped.resize(user.get_size() / sizeof(float));
    source = c->flipped.data();
  }
  c->source = dnnl::memory(user, engine_, source);
  c->copy = dnnl::memory(wanted, engine_);
  c->convert = dnnl::reorder(c->source, c->copy);
  copies_.push_back(std::move(c));
  stale_ = true;
  return copies_.back()->copy;
}

void WeightCopies::Refresh(dnnl::stream& stream) {
  if (!stale_ && converted_version_ == store_->values_version()) return;
  for (const auto& c : copies_) {
    if (c->flip_kernel > 0) {
      const int64_t k = c->flip_kernel;
      FlipKernels(c->values, static_cast<int64_t>(c->flipped.size()) / (k * k), k,
                  c->flipped.data());
    }
    c->convert.execute(stream, c->source, c->copy);
  }
  stream.wait();
  stale_ = false;
  converted_version_ = store_->values_version();
  ++refreshes_;
}

}  // namespace gan
