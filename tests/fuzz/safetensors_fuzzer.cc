// Checkpoint bytes as the server and gan-train read them: ParseSafeTensors, every tensor through
// GetF32/GetI64, then the checkpoint path of the model cache (CheckpointSpec, ValidateGanSpec with
// the server's default caps, LoadNetworkWeights into parameter stores) and RestoreCheckpoint into a
// tiny trainer. Parameter stores are only built for specs of at most kMaxParameters parameters
// per network, so one input stays fast; larger valid specs stop after validation.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/strings/string_view.h"
#include "core/checkpoint.h"
#include "core/gan_spec.h"
#include "core/gan_trainer.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/safetensors.h"
#include "server/server.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr int64_t kMaxParameters = 1 << 16;

gan::GanTrainer* TinyTrainer() {
  static gan::GanTrainer* trainer = [] {
    auto created = gan::GanTrainer::Create(gan::fuzz::TinyGanSpec());
    if (!created.ok()) __builtin_trap();
    return created->release();
  }();
  return trainer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<gan::SafeTensors> st = gan::ParseSafeTensors(bytes);
  if (!st.ok()) return 0;
  for (const auto& [name, tensor] : st->tensors) {
    if (tensor.dtype == gan::DType::kF32) {
      if (!gan::GetF32(*st, name, tensor.shape).ok()) __builtin_trap();
    } else if (tensor.dtype == gan::DType::kI64) {
      if (!gan::GetI64(*st, name, tensor.shape).ok()) __builtin_trap();
    } else {
      (void)gan::GetF32(*st, name);
    }
  }

  (void)gan::RestoreCheckpoint(*st, TinyTrainer());

  absl::StatusOr<gan::v1::GanSpec> spec = gan::CheckpointSpec(*st);
  if (!spec.ok()) return 0;
  static const gan::GanLimits limits =
      gan::server::ScoringOptionsFrom(gan::server::Options{}).limits;
  absl::StatusOr<gan::GanShapes> shapes = gan::ValidateGanSpec(*spec, limits);
  if (!shapes.ok()) return 0;
  if (gan::CountParameters(shapes->generator) > kMaxParameters ||
      gan::CountParameters(shapes->discriminator) > kMaxParameters) {
    return 0;
  }
  gan::ParameterStore generator("generator", shapes->generator);
  gan::ParameterStore discriminator("discriminator", shapes->discriminator);
  (void)gan::LoadNetworkWeights(*st, &generator);
  (void)gan::LoadNetworkWeights(*st, &discriminator);
  return 0;
}
