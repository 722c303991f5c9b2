#include "core/checkpoint.h"

#include <zlib.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "io/status_macros.h"

namespace gan {
namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("checkpoint: ", what));
}

// Views into the trainer's buffers: valid while the trainer is left alone.
using Views = std::map<std::string, TensorView>;

template <typename T>
absl::string_view BytesOf(const T* data, int64_t n) {
  static_assert(
      __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
      "checkpoint tensors are little-endian: views of host memory need a little-endian host");
  return absl::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * sizeof(T));
}

void AddNetwork(const ParameterStore& store, Views* views) {
  for (const ParameterStore::Entry& e : store.entries()) {
    (*views)[e.name] = TensorView{DType::kF32, e.dims, BytesOf(store.Data(e), NumElements(e.dims))};
  }
  for (const auto& [layer, count] : store.batches_tracked()) {
    (*views)[absl::StrCat(store.model_name(), ".", layer, ".num_batches_tracked")] =
        TensorView{DType::kI64, {}, BytesOf(&count, 1)};
  }
}

void AddOptimizer(const ParameterStore& store, Adam& adam, Views* views,
                  std::map<std::string, std::string>* metadata) {
  for (const ParameterStore::Entry& e : store.entries()) {
    if (!e.trainable) continue;
    const int64_t n = NumElements(e.dims);
    const std::string prefix = absl::StrCat("optimizer.", e.name);
    (*views)[prefix + ".exp_avg"] =
        TensorView{DType::kF32, e.dims, BytesOf(adam.exp_avg().data() + e.offset, n)};
    (*views)[prefix + ".exp_avg_sq"] =
        TensorView{DType::kF32, e.dims, BytesOf(adam.exp_avg_sq().data() + e.offset, n)};
  }
  (*metadata)[absl::StrCat("optimizer.", store.model_name(), ".steps")] =
      absl::StrCat(adam.steps());
}

// Checks a tensor's dtype and shape; copies its bytes into `out` only when `out` is not null.
absl::Status CheckTensor(const SafeTensors& st, const std::string& name, DType dtype,
                         const Dims& dims, void* out) {
  auto it = st.tensors.find(name);
  if (it == st.tensors.end()) return Invalid(absl::StrCat("tensor '", name, "' is missing"));
  const Tensor& t = it->second;
  if (t.dtype != dtype) {
    return Invalid(absl::StrCat("tensor '", name, "' is ", DTypeName(t.dtype), ", expected ",
                                DTypeName(dtype)));
  }
  if (t.shape != dims) {
    return Invalid(absl::StrCat("tensor '", name, "' has shape ", DimsToString(t.shape),
                                ", the model expects ", DimsToString(dims)));
  }
  if (out != nullptr) std::memcpy(out, t.bytes.data(), t.bytes.size());
  return absl::OkStatus();
}

// Validates (apply=false) or copies (apply=true) one network's tensors.
absl::Status VisitNetwork(const SafeTensors& st, ParameterStore* store, bool apply) {
  size_t expected = 0;
  for (const ParameterStore::Entry& e : store->entries()) {
    GAN_RETURN_IF_ERROR(
        CheckTensor(st, e.name, DType::kF32, e.dims, apply ? store->Data(e) : nullptr));
    ++expected;
  }
  for (const auto& [layer, count] : store->batches_tracked()) {
    int64_t value;
    GAN_RETURN_IF_ERROR(
        CheckTensor(st, absl::StrCat(store->model_name(), ".", layer, ".num_batches_tracked"),
                    DType::kI64, {}, &value));
    if (apply) store->BatchesTracked(layer) = value;
    ++expected;
  }
  const std::string prefix = store->model_name() + ".";
  size_t present = 0;
  for (const auto& [name, tensor] : st.tensors) present += absl::StartsWith(name, prefix);
  if (present != expected) {
    for (const auto& [name, tensor] : st.tensors) {
      if (!absl::StartsWith(name, prefix)) continue;
      bool known = false;
      for (const ParameterStore::Entry& e : store->entries()) known |= e.name == name;
      known |= absl::EndsWith(name, ".num_batches_tracked");
      if (!known) return Invalid(absl::StrCat("unexpected tensor '", name, "' for this model"));
    }
    return Invalid(absl::StrCat("expected ", expected, " '", prefix, "' tensors, found ", present));
  }
  return absl::OkStatus();
}

absl::Status VisitOptimizer(const SafeTensors& st, ParameterStore* store, Adam* adam, bool apply) {
  for (const ParameterStore::Entry& e : store->entries()) {
    if (!e.trainable) continue;
    const std::string prefix = absl::StrCat("optimizer.", e.name);
    GAN_RETURN_IF_ERROR(CheckTensor(st, prefix + ".exp_avg", DType::kF32, e.dims,
                                    apply ? adam->exp_avg().data() + e.offset : nullptr));
    GAN_RETURN_IF_ERROR(CheckTensor(st, prefix + ".exp_avg_sq", DType::kF32, e.dims,
                                    apply ? adam->exp_avg_sq().data() + e.offset : nullptr));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MetadataInt(const SafeTensors& st, const std::string& key) {
  auto it = st.metadata.find(key);
  int64_t value;
  if (it == st.metadata.end()) return Invalid(absl::StrCat("metadata '", key, "' is missing"));
  if (!absl::SimpleAtoi(it->second, &value) || value < 0) {
    return Invalid(
        absl::StrCat("metadata '", key, "' is not a non-negative integer: '", it->second, "'"));
  }
  return value;
}

// One field of the checksum: its length (8 bytes little-endian) and its bytes, so that no two
// different sequences of fields feed the same bytes.
uLong AddField(uLong crc, absl::string_view bytes) {
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) {
    length[i] = static_cast<unsigned char>(uint64_t{bytes.size()} >> (8 * i));
  }
  crc = crc32_z(crc, length, sizeof(length));
  return crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size());
}

}  // namespace

namespace {

template <typename Tensors>  // a name -> Tensor or name -> TensorView map
std::string Checksum(const Tensors& tensors, const std::map<std::string, std::string>& metadata) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  for (const auto& [name, tensor] : tensors) {
    crc = AddField(crc, name);
    crc = AddField(crc, DTypeName(tensor.dtype));
    crc = AddField(crc, DimsToString(tensor.shape));
    crc = AddField(crc, tensor.bytes);
  }
  for (const auto& [key, value] : metadata) {
    if (key == kChecksumKey) continue;
    crc = AddField(crc, key);
    crc = AddField(crc, value);
  }
  return absl::StrFormat("%08x", static_cast<uint32_t>(crc));
}

// The checkpoint as views into the trainer, its metadata complete but for the checksum
// (AddChecksum).
void CheckpointViews(GanTrainer& trainer, const CheckpointInfo& info, Views* views,
                     std::map<std::string, std::string>* metadata) {
  AddNetwork(trainer.generator(), views);
  AddNetwork(trainer.discriminator(), views);
  AddOptimizer(trainer.generator(), trainer.generator_optimizer(), views, metadata);
  AddOptimizer(trainer.discriminator(), trainer.discriminator_optimizer(), views, metadata);
  std::string spec_json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(trainer.spec(), &spec_json, options);
  (*metadata)["format"] = kCheckpointFormat;
  (*metadata)["step"] = absl::StrCat(info.step);
  (*metadata)["epoch"] = absl::StrCat(info.epoch);
  (*metadata)["seed"] = absl::StrCat(info.seed);
  // Noise, dropout masks and data order are counter-based: (seed, step) is the whole RNG state.
  (*metadata)["rng"] = absl::StrCat("splitmix64-counter seed=", info.seed, " step=", info.step);
  (*metadata)["spec"] = spec_json;
}

void AddChecksum(const Views& views, std::map<std::string, std::string>* metadata) {
  (*metadata)[kChecksumKey] = Checksum(views, *metadata);
}

}  // namespace

std::string CheckpointChecksum(const SafeTensors& checkpoint) {
  return Checksum(checkpoint.tensors, checkpoint.metadata);
}

absl::Status VerifyCheckpointChecksum(const SafeTensors& checkpoint) {
  auto stored = checkpoint.metadata.find(kChecksumKey);
  if (stored == checkpoint.metadata.end()) return absl::OkStatus();
  const std::string computed = CheckpointChecksum(checkpoint);
  if (stored->second != computed) {
    return Invalid(absl::StrCat(kChecksumKey, " ", stored->second, " does not match the contents (",
                                computed, "): the file changed after it was written"));
  }
  return absl::OkStatus();
}

SafeTensors MakeCheckpoint(GanTrainer& trainer, const CheckpointInfo& info) {
  Views views;
  SafeTensors st;
  CheckpointViews(trainer, info, &views, &st.metadata);
  AddChecksum(views, &st.metadata);
  for (const auto& [name, view] : views) {
    st.tensors[name] = Tensor{view.dtype, view.shape, std::string(view.bytes)};
  }
  return st;
}

absl::Status SaveCheckpoint(const std::string& path, GanTrainer& trainer,
                            const CheckpointInfo& info) {
  // Streamed from the trainer's buffers into the file: no copy of the tensors is assembled.
  Views views;
  std::map<std::string, std::string> metadata;
  CheckpointViews(trainer, info, &views, &metadata);
  AddChecksum(views, &metadata);
  return WriteSafeTensorsFile(path, views, metadata);
}

struct CheckpointSnapshot::Contents {
  std::unique_ptr<char[]> storage;  // every tensor's bytes, back to back
  Views views;                      // into storage
  std::map<std::string, std::string> metadata;
};

CheckpointSnapshot::CheckpointSnapshot(std::unique_ptr<Contents> contents)
    : contents_(std::move(contents)) {}
CheckpointSnapshot::CheckpointSnapshot(CheckpointSnapshot&&) noexcept = default;
CheckpointSnapshot& CheckpointSnapshot::operator=(CheckpointSnapshot&&) noexcept = default;
CheckpointSnapshot::~CheckpointSnapshot() = default;

CheckpointSnapshot CheckpointSnapshot::Take(GanTrainer& trainer, const CheckpointInfo& info) {
  auto contents = std::make_unique<Contents>();
  CheckpointViews(trainer, info, &contents->views, &contents->metadata);
  size_t bytes = 0;
  for (const auto& [name, view] : contents->views) bytes += view.bytes.size();
  // Not value-initialized: every byte is copied over below.
  contents->storage.reset(new char[bytes]);
  char* at = contents->storage.get();
  for (auto& [name, view] : contents->views) {
    std::memcpy(at, view.bytes.data(), view.bytes.size());
    view.bytes = absl::string_view(at, view.bytes.size());
    at += view.bytes.size();
  }
  return CheckpointSnapshot(std::move(contents));
}

absl::Status CheckpointSnapshot::Write(const std::string& path) const {
  std::map<std::string, std::string> metadata = contents_->metadata;
  AddChecksum(contents_->views, &metadata);
  return WriteSafeTensorsFile(path, contents_->views, metadata);
}

absl::Status LoadNetworkWeights(const SafeTensors& checkpoint, ParameterStore* store) {
  GAN_RETURN_IF_ERROR(VisitNetwork(checkpoint, store, /*apply=*/false));
  return VisitNetwork(checkpoint, store, /*apply=*/true);
}

absl::StatusOr<gan::v1::GanSpec> CheckpointSpec(const SafeTensors& checkpoint) {
  auto it = checkpoint.metadata.find("spec");
  if (it == checkpoint.metadata.end()) return Invalid("metadata 'spec' is missing");
  gan::v1::GanSpec spec;
  if (!google::protobuf::util::JsonStringToMessage(it->second, &spec).ok()) {
    return Invalid("metadata 'spec' is not a valid GanSpec");
  }
  return spec;
}

absl::StatusOr<CheckpointInfo> RestoreCheckpoint(const SafeTensors& checkpoint,
                                                 GanTrainer* trainer) {
  auto format = checkpoint.metadata.find("format");
  if (format == checkpoint.metadata.end() || format->second != kCheckpointFormat) {
    return Invalid(absl::StrCat("metadata 'format' must be '", kCheckpointFormat, "'"));
  }
  CheckpointInfo info;
  GAN_ASSIGN_OR_RETURN(info.step, MetadataInt(checkpoint, "step"));
  GAN_ASSIGN_OR_RETURN(info.epoch, MetadataInt(checkpoint, "epoch"));
  auto seed = checkpoint.metadata.find("seed");
  if (seed == checkpoint.metadata.end() || !absl::SimpleAtoi(seed->second, &info.seed)) {
    return Invalid("metadata 'seed' is missing or not an unsigned 64-bit integer");
  }
  GAN_ASSIGN_OR_RETURN(int64_t g_steps, MetadataInt(checkpoint, "optimizer.generator.steps"));
  GAN_ASSIGN_OR_RETURN(int64_t d_steps, MetadataInt(checkpoint, "optimizer.discriminator.steps"));
  // Validate everything first (the structure, then the checksum), then apply: a bad file changes
  // nothing.
  for (bool apply : {false, true}) {
    if (apply) GAN_RETURN_IF_ERROR(VerifyCheckpointChecksum(checkpoint));
    GAN_RETURN_IF_ERROR(VisitNetwork(checkpoint, &trainer->generator(), apply));
    GAN_RETURN_IF_ERROR(VisitNetwork(checkpoint, &trainer->discriminator(), apply));
    GAN_RETURN_IF_ERROR(
        VisitOptimizer(checkpoint, &trainer->generator(), &trainer->generator_optimizer(), apply));
    GAN_RETURN_IF_ERROR(VisitOptimizer(checkpoint, &trainer->discriminator(),
                                       &trainer->discriminator_optimizer(), apply));
  }
  trainer->generator_optimizer().set_steps(g_steps);
  trainer->discriminator_optimizer().set_steps(d_steps);
  trainer->set_step(info.step);
  return info;
}

absl::StatusOr<CheckpointInfo> LoadCheckpoint(const std::string& path, GanTrainer* trainer) {
  GAN_ASSIGN_OR_RETURN(SafeTensors checkpoint, ReadSafeTensorsFile(path));
  return RestoreCheckpoint(checkpoint, trainer);
}

}  // namespace gan
