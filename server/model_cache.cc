#include "server/model_cache.h"

#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/checkpoint.h"
#include "core/safetensors.h"
#include "io/status_macros.h"

namespace gan::server {

// Identifies one version of a file: an atomic rewrite (temp file + rename) changes the inode, an
// in-place one the mtime or size.
struct ModelCache::FileVersion {
  int64_t mtime_ns = 0;
  int64_t size = 0;
  uint64_t device = 0;
  uint64_t inode = 0;

  bool operator==(const FileVersion& o) const {
    return mtime_ns == o.mtime_ns && size == o.size && device == o.device && inode == o.inode;
  }
};

struct ModelCache::Entry {
  Entry(std::string path, FileVersion version) : path(std::move(path)), version(version) {}

  const std::string path;
  const FileVersion version;
  // Serializes loading and every use of `model`.
  absl::Mutex mu;
  bool attempted ABSL_GUARDED_BY(mu) = false;
  absl::Status load_status ABSL_GUARDED_BY(mu);
  std::unique_ptr<LoadedModel> model ABSL_GUARDED_BY(mu);
};

namespace {

absl::Status WithPath(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("checkpoint '", path, "': ", status.message()));
}

absl::StatusOr<int64_t> CheckpointStep(const SafeTensors& checkpoint) {
  auto it = checkpoint.metadata.find("step");
  int64_t step = 0;
  if (it == checkpoint.metadata.end()) {
    return absl::InvalidArgumentError("metadata 'step' is missing");
  }
  if (!absl::SimpleAtoi(it->second, &step) || step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata 'step' is not a non-negative integer: '", it->second, "'"));
  }
  return step;
}

// Only the tensors `keep` names are copied out of the file (the others are validated).
absl::StatusOr<SafeTensors> ReadPart(const std::string& path, absl::string_view prefix) {
  // ReadSafeTensorsFile's messages name the path.
  return ReadSafeTensorsFile(
      path, {}, [prefix](absl::string_view name) { return absl::StartsWith(name, prefix); });
}

// The file's spec (validated) and the discriminator's weights: the generator's and the optimizer
// state (most of a checkpoint) are validated but not kept.
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path,
                                                       const ModelCacheOptions& options) {
  GAN_ASSIGN_OR_RETURN(SafeTensors checkpoint, ReadPart(path, "discriminator."));
  absl::StatusOr<gan::v1::GanSpec> spec = CheckpointSpec(checkpoint);
  if (!spec.ok()) return WithPath(path, spec.status());
  absl::StatusOr<GanShapes> shapes = ValidateGanSpec(*spec, options.limits);
  if (!shapes.ok()) return WithPath(path, shapes.status());
  absl::StatusOr<int64_t> step = CheckpointStep(checkpoint);
  if (!step.ok()) return WithPath(path, step.status());

  auto model = std::make_unique<LoadedModel>();
  model->path = path;
  model->step = *step;
  model->noise = spec->noise();
  model->height = spec->image_shape().height();
  model->width = spec->image_shape().width();
  model->channels = spec->image_shape().channels();
  model->shapes = *std::move(shapes);
  model->discriminator = std::make_unique<ParameterStore>(
      "discriminator", model->shapes.discriminator, ParameterStore::Gradients::kNone);
  if (absl::Status s = LoadNetworkWeights(checkpoint, model->discriminator.get()); !s.ok()) {
    return WithPath(path, s);
  }
  model->scorer = std::make_unique<Scorer>(model->shapes.discriminator, model->discriminator.get(),
                                           options.chunk, options.single_thread_images);
  return model;
}

ModelCacheOptions Sanitized(ModelCacheOptions options) {
  options.max_cached_models = std::max(options.max_cached_models, 1);
  options.chunk = std::max<int64_t>(options.chunk, 1);
  return options;
}

}  // namespace

absl::StatusOr<Sampler*> GeneratorSampler(LoadedModel& model, int64_t chunk) {
  if (model.sampler != nullptr) return model.sampler.get();
  GAN_ASSIGN_OR_RETURN(SafeTensors checkpoint, ReadPart(model.path, "generator."));
  absl::StatusOr<int64_t> step = CheckpointStep(checkpoint);
  if (!step.ok()) return WithPath(model.path, step.status());
  if (*step != model.step) {
    return absl::AbortedError(absl::StrCat(model.path, ": the file changed (step ", *step,
                                           ", loaded as step ", model.step, "); try again"));
  }
  auto generator = std::make_unique<ParameterStore>("generator", model.shapes.generator,
                                                    ParameterStore::Gradients::kNone);
  if (absl::Status s = LoadNetworkWeights(checkpoint, generator.get()); !s.ok()) {
    return WithPath(model.path, s);
  }
  GAN_ASSIGN_OR_RETURN(std::unique_ptr<Sampler> sampler,
                       Sampler::Create(model.shapes.generator, generator.get(), model.noise,
                                       std::max<int64_t>(chunk, 1)));
  model.generator = std::move(generator);
  model.sampler = std::move(sampler);
  ::malloc_trim(0);  // the file's copy, as after LoadModel
  return model.sampler.get();
}

ModelCache::ModelCache(const ModelCacheOptions& options) : options_(Sanitized(options)) {}

int ModelCache::cached_models() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(lru_.size());
}

int64_t ModelCache::models_loaded() const {
  absl::MutexLock lock(&mu_);
  return models_loaded_;
}

absl::StatusOr<std::shared_ptr<ModelCache::Entry>> ModelCache::Acquire(const std::string& path) {
  // Stat before reading: if the file is replaced in between, the entry holds newer contents under
  // the older version and the next request merely loads it again.
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("checkpoint '", path, "'"));
  }
  FileVersion version;
  version.mtime_ns = int64_t{info.st_mtim.tv_sec} * 1000000000 + info.st_mtim.tv_nsec;
  version.size = info.st_size;
  version.device = info.st_dev;
  version.inode = info.st_ino;

  absl::MutexLock lock(&mu_);
  auto it = index_.find(path);
  if (it != index_.end()) {
    if ((*it->second)->version == version) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return lru_.front();
    }
    lru_.erase(it->second);  // stale: users still holding it keep it alive
    index_.erase(it);
  }
  lru_.push_front(std::make_shared<Entry>(path, version));
  index_[path] = lru_.begin();
  while (static_cast<int>(lru_.size()) > options_.max_cached_models) {
    index_.erase(lru_.back()->path);
    lru_.pop_back();
  }
  return lru_.front();
}

void ModelCache::Forget(const Entry* entry) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(entry->path);
  if (it != index_.end() && it->second->get() == entry) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

absl::Status ModelCache::WithModel(const std::string& path,
                                   absl::FunctionRef<absl::Status(LoadedModel&)> fn) {
  GAN_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Acquire(path));
  absl::MutexLock lock(&entry->mu);
  if (!entry->attempted) {
    // The first user of this file version loads it; concurrent ones wait on entry->mu.
    entry->attempted = true;
    absl::StatusOr<std::unique_ptr<LoadedModel>> model = LoadModel(path, options_);
    // Loading copied the file's tensors once more before they went into the networks; glibc keeps
    // such freed blocks in its heaps. Returning them now is what keeps each cached model near the
    // size of its weights (bench/model_cache_memory.sh).
    ::malloc_trim(0);
    if (model.ok()) {
      entry->model = *std::move(model);
      absl::MutexLock cache_lock(&mu_);
      ++models_loaded_;
    } else {
      entry->load_status = model.status();
      Forget(entry.get());  // the next use tries again
    }
  }
  if (entry->model == nullptr) return entry->load_status;
  return fn(*entry->model);
}

}  // namespace gan::server
