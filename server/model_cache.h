#ifndef GAN_SERVER_MODEL_CACHE_H_
#define GAN_SERVER_MODEL_CACHE_H_

// Checkpoints loaded for inference, in an LRU cache keyed by path. A checkpoint is a safetensors
// file written by the trainer (core/checkpoint.h) whose metadata holds the GanSpec as JSON and the
// step; a loaded model holds both networks' weights (no optimizer state). An entry is reused only
// while the file's (mtime, size, device, inode) are unchanged, so a checkpoint rewritten in place
// is loaded again.
//
// Thread-safe. Models of different checkpoints load and run in parallel; uses of the same model
// serialize on that model's mutex (oneDNN networks are not thread-safe). A model evicted while in
// use stays alive until its last use ends. A failed load is not cached: the next use tries again.

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/gan_spec.h"
#include "core/parameter_store.h"
#include "core/sampler.h"
#include "core/scorer.h"

namespace gan::server {

// A loaded checkpoint: the discriminator's weights and the inference networks over them; the
// generator's weights and networks once something samples (GeneratorSampler).
struct LoadedModel {
  std::string path;
  int64_t step = 0;
  gan::v1::NoiseSpec noise;
  GanShapes shapes;
  int height = 0, width = 0, channels = 0;
  std::unique_ptr<ParameterStore> discriminator;
  // Networks sized per batch (powers of two up to `chunk`), each created on first use and all
  // sharing `discriminator`'s weights.
  std::unique_ptr<Scorer> scorer;
  // Null until GeneratorSampler: a model that only scores holds neither the generator's weights
  // (most of a checkpoint's) nor its networks.
  std::unique_ptr<ParameterStore> generator;
  std::unique_ptr<Sampler> sampler;
};

// The model's sampler, reading the generator's weights from model.path on first use (the same
// step's file: a checkpoint file is never rewritten with other contents) and creating the
// sampler with networks of up to `chunk` images. Call it holding the model (ModelCache::WithModel).
absl::StatusOr<Sampler*> GeneratorSampler(LoadedModel& model, int64_t chunk);

struct ModelCacheOptions {
  int max_cached_models = 1;         // at least 1
  int64_t chunk = 1;                 // most images per inference pass; at least 1
  int64_t single_thread_images = 0;  // Scorer's: passes of at most this many on one thread
  GanLimits limits;                  // caps applied to the spec stored in a checkpoint
};

class ModelCache {
 public:
  explicit ModelCache(const ModelCacheOptions& options);
  ModelCache(const ModelCache&) = delete;
  ModelCache& operator=(const ModelCache&) = delete;

  // Runs `fn` on the model of `path` (loading it first when needed) holding that model's mutex.
  // A missing or unreadable checkpoint gives the loader's status (NOT_FOUND, INVALID_ARGUMENT,
  // ...) with the path in the message.
  absl::Status WithModel(const std::string& path, absl::FunctionRef<absl::Status(LoadedModel&)> fn);

  // Checkpoints currently cached.
  int cached_models() const;
  // Checkpoint files read from disk since construction (a miss or a changed file).
  int64_t models_loaded() const;

 private:
  struct FileVersion;
  struct Entry;

  // The entry of the file's current version, created (not yet loaded) when absent or stale.
  absl::StatusOr<std::shared_ptr<Entry>> Acquire(const std::string& path);
  // Drops `entry` unless it was replaced meanwhile.
  void Forget(const Entry* entry);

  const ModelCacheOptions options_;
  mutable absl::Mutex mu_;
  // Most recently used first; index_ maps a path to its position.
  std::list<std::shared_ptr<Entry>> lru_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::list<std::shared_ptr<Entry>>::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t models_loaded_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gan::server

#endif  // GAN_SERVER_MODEL_CACHE_H_
