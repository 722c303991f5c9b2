#ifndef GAN_CORE_PARAMETER_STORE_H_
#define GAN_CORE_PARAMETER_STORE_H_

// The parameters of one network (generator or discriminator) in flat buffers: every trainable
// tensor back to back (so Adam and gradient norms run over one array), then the non-trainable
// state (BatchNorm running statistics). Each tensor is in its PyTorch layout and is named
// "<model>.<layer index>.<param>" as in checkpoints. Networks built for different batch sizes
// share one store. Not thread-safe: one trainer owns it.
//
// values_version() changes with every non-const access to the values (Value, Data, trainable(),
// state()): whoever may write them (Adam, initializers, checkpoint loading, tests) goes through
// one, so copies derived from the values (the bf16 weights of mixed precision) know when they
// are stale without anyone having to remember to invalidate them.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/model_shapes.h"

namespace gan {

class ParameterStore {
 public:
  struct Entry {
    std::string name;  // "discriminator.0.weight"
    int layer;
    std::string param;  // "weight"
    Dims dims;
    bool trainable;
    int64_t offset;  // into trainable values/grads when trainable, else into state
  };

  // kNone: an inference-only store (serving): no gradient buffer, Grad() is nullptr.
  enum class Gradients { kAllocate, kNone };
  ParameterStore(std::string model_name, const std::vector<LayerShape>& layers,
                 Gradients gradients = Gradients::kAllocate);

  const std::string& model_name() const { return model_name_; }
  const std::vector<Entry>& entries() const { return entries_; }
  // nullptr when absent.
  const Entry* Find(int layer, const std::string& param) const;

  // Values of a tensor (trainable or state); nullptr when absent.
  float* Value(int layer, const std::string& param);
  uint64_t values_version() const { return values_version_; }
  // Gradient of a trainable tensor; nullptr when absent, not trainable, or the store has none.
  float* Grad(int layer, const std::string& param);
  // BatchNorm's num_batches_tracked of a layer (0 when the layer has none).
  int64_t& BatchesTracked(int layer) { return batches_tracked_[layer]; }
  const std::map<int, int64_t>& batches_tracked() const { return batches_tracked_; }

  std::vector<float>& trainable() {
    ++values_version_;
    return trainable_;
  }
  std::vector<float>& grads() { return grads_; }
  std::vector<float>& state() {
    ++values_version_;
    return state_;
  }
  const std::vector<float>& trainable() const { return trainable_; }
  const std::vector<float>& state() const { return state_; }

  // Values of an entry, in either buffer.
  float* Data(const Entry& e) {
    ++values_version_;
    return (e.trainable ? trainable_.data() : state_.data()) + e.offset;
  }
  const float* Data(const Entry& e) const {
    return (e.trainable ? trainable_.data() : state_.data()) + e.offset;
  }

 private:
  std::string model_name_;
  std::vector<Entry> entries_;
  std::vector<float> trainable_;
  std::vector<float> grads_;
  std::vector<float> state_;
  std::map<int, int64_t> batches_tracked_;
  uint64_t values_version_ = 0;
};

}  // namespace gan

#endif  // GAN_CORE_PARAMETER_STORE_H_
