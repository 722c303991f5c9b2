#include "core/warm_start.h"

#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/checkpoint.h"
#include "io/status_macros.h"

namespace gan {
namespace {

struct Expected {
  std::string name;
  DType dtype;
  Dims dims;
};

// The names a network's tensors have in checkpoints (core/checkpoint.h), in network order.
std::vector<Expected> NetworkTensors(const std::string& model,
                                     const std::vector<LayerShape>& layers, bool with_optimizer) {
  std::vector<Expected> tensors;
  std::vector<Expected> optimizer;
  for (const LayerShape& layer : layers) {
    for (const ParamShape& p : layer.params) {
      const std::string name = absl::StrCat(model, ".", layer.index, ".", p.name);
      tensors.push_back({name, DType::kF32, p.dims});
      if (with_optimizer && p.trainable) {
        optimizer.push_back({absl::StrCat("optimizer.", name, ".exp_avg"), DType::kF32, p.dims});
        optimizer.push_back({absl::StrCat("optimizer.", name, ".exp_avg_sq"), DType::kF32, p.dims});
      }
    }
    if (layer.spec.has_batch_norm()) {
      tensors.push_back(
          {absl::StrCat(model, ".", layer.index, ".num_batches_tracked"), DType::kI64, {}});
    }
  }
  tensors.insert(tensors.end(), optimizer.begin(), optimizer.end());
  return tensors;
}

absl::Status CheckOne(const SafeTensors& file, const Expected& expected) {
  auto it = file.tensors.find(expected.name);
  if (it == file.tensors.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", expected.name, "' is missing from the file; the network needs ",
                     DTypeName(expected.dtype), " ", DimsToString(expected.dims)));
  }
  const Tensor& t = it->second;
  if (t.dtype != expected.dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", expected.name, "' is ", DTypeName(t.dtype),
                     " in the file, the network needs ", DTypeName(expected.dtype)));
  }
  if (t.shape != expected.dims) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", expected.name, "' has shape ", DimsToString(t.shape),
                     " in the file, the network needs ", DimsToString(expected.dims)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> OptimizerSteps(const SafeTensors& file, const std::string& model) {
  const std::string key = absl::StrCat("optimizer.", model, ".steps");
  auto it = file.metadata.find(key);
  int64_t steps = 0;
  if (it == file.metadata.end() || !absl::SimpleAtoi(it->second, &steps) || steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata '", key, "' (Adam's step count) is missing or not an integer >= 0"));
  }
  return steps;
}

void CopyInto(const Tensor& t, void* out) { std::memcpy(out, t.bytes.data(), t.bytes.size()); }

}  // namespace

absl::Status CheckWarmStartTensors(const SafeTensors& file, const GanShapes& shapes,
                                   bool with_optimizer) {
  std::set<std::string> known;
  for (const auto& [model, layers] :
       {std::make_pair(std::string("generator"), &shapes.generator),
        std::make_pair(std::string("discriminator"), &shapes.discriminator)}) {
    for (const Expected& expected : NetworkTensors(model, *layers, with_optimizer)) {
      GAN_RETURN_IF_ERROR(CheckOne(file, expected));
      known.insert(expected.name);
    }
    if (with_optimizer) GAN_RETURN_IF_ERROR(OptimizerSteps(file, model).status());
  }
  for (const auto& [name, tensor] : file.tensors) {
    const bool network =
        absl::StartsWith(name, "generator.") || absl::StartsWith(name, "discriminator.");
    if (network && known.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' (shape ",
                                                     DimsToString(tensor.shape),
                                                     ") is in the file but not in the network"));
    }
  }
  return absl::OkStatus();
}

absl::Status WarmStart(const SafeTensors& file, bool with_optimizer, GanTrainer* trainer) {
  GAN_RETURN_IF_ERROR(CheckWarmStartTensors(file, trainer->shapes(), with_optimizer));
  GAN_RETURN_IF_ERROR(LoadNetworkWeights(file, &trainer->generator()));
  GAN_RETURN_IF_ERROR(LoadNetworkWeights(file, &trainer->discriminator()));
  if (!with_optimizer) return absl::OkStatus();
  for (const auto& [store, adam] :
       {std::make_pair(&trainer->generator(), &trainer->generator_optimizer()),
        std::make_pair(&trainer->discriminator(), &trainer->discriminator_optimizer())}) {
    for (const ParameterStore::Entry& e : store->entries()) {
      if (!e.trainable) continue;
      const std::string prefix = absl::StrCat("optimizer.", e.name);
      CopyInto(file.tensors.at(prefix + ".exp_avg"), adam->exp_avg().data() + e.offset);
      CopyInto(file.tensors.at(prefix + ".exp_avg_sq"), adam->exp_avg_sq().data() + e.offset);
    }
    GAN_ASSIGN_OR_RETURN(int64_t steps, OptimizerSteps(file, store->model_name()));
    adam->set_steps(steps);
  }
  return absl::OkStatus();
}

}  // namespace gan
