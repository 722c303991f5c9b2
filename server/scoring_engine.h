#ifndef GAN_SERVER_SCORING_ENGINE_H_
#define GAN_SERVER_SCORING_ENGINE_H_

// Scores images with a checkpoint's discriminator and draws samples from its generator.
//
// A checkpoint is a safetensors file written by the trainer (core/checkpoint.h): its metadata
// holds the GanSpec as JSON and the step. Loaded checkpoints (both networks' weights, no optimizer
// state) are kept in an LRU cache keyed by path; an entry is reused only while the file's
// (mtime, size, inode) are unchanged, so a checkpoint rewritten in place is loaded again.
//
// Requests are validated before anything proportional to them is allocated: the shape is checked
// (and its element count computed with overflow checks) against the limits and the model's image
// shape, and the payload length against the shape, before the pixels are converted.
//
// Thread-safe. Requests on different checkpoints load and run in parallel; requests on the same
// checkpoint serialize on that model's mutex (oneDNN networks are not thread-safe). A model
// evicted while in use stays alive until its last request finishes.

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
#include "gan/v1/service.pb.h"

namespace gan::server {

struct ScoringOptions {
  // Loaded checkpoints kept in memory (least recently used evicted first); at least 1.
  int max_cached_models = 4;
  // Images per inference pass (the Scorer's and Sampler's fixed network size); at least 1.
  int64_t chunk = 64;
  // Most images in one ScoreRequest; more is INVALID_ARGUMENT naming the limit.
  int64_t max_score_batch = 1024;
  // Most images in one Sample call.
  int64_t max_sample_count = 1024;
  // Caps applied to the spec stored in a checkpoint.
  GanLimits limits;
};

class ScoringEngine {
 public:
  explicit ScoringEngine(const ScoringOptions& options);
  ~ScoringEngine();

  ScoringEngine(const ScoringEngine&) = delete;
  ScoringEngine& operator=(const ScoringEngine&) = delete;

  // Scores request.shape = (N, H, W, C) images, given as uint8_pixels (0..255, mapped to
  // x / 127.5 - 1) or float_pixels (little-endian float32 in [-1, 1]), both NHWC, with the
  // discriminator of `checkpoint_path`. Returns one logit and sigmoid probability per image and
  // the checkpoint's step. request.job_id and request.checkpoint_step are ignored (the caller
  // resolved them to the path).
  // INVALID_ARGUMENT naming the field ("shape: ...", "pixels: ...", "uint8_pixels: ...",
  // "float_pixels: ...") for a bad request; a missing or unreadable checkpoint gives the loader's
  // status (NOT_FOUND, INVALID_ARGUMENT, ...) with the path in the message.
  absl::StatusOr<gan::v1::ScoreResponse> Score(const std::string& checkpoint_path,
                                               const gan::v1::ScoreRequest& request);

  // `count` images (NHWC uint8) from the generator of `checkpoint_path`, BatchNorm in inference
  // mode. Image i depends only on (checkpoint, seed, i). INVALID_ARGUMENT when count is outside
  // [1, max_sample_count].
  absl::StatusOr<gan::v1::SampleImagesResponse> Sample(const std::string& checkpoint_path,
                                                       int32_t count, uint64_t seed);

  // Checkpoints currently in the cache (for tests and metrics).
  int cached_models() const;
  // Checkpoint files read from disk since construction (a cache miss or a changed file).
  int64_t models_loaded() const;

 private:
  struct Model;
  struct CacheEntry;

  // Runs `fn` on the model of `path` (loading it first when needed) holding that model's mutex.
  absl::Status WithModel(const std::string& path, absl::FunctionRef<absl::Status(Model&)> fn);
  // The cache entry of the file's current version, created (not yet loaded) when absent or stale.
  absl::StatusOr<std::shared_ptr<CacheEntry>> Acquire(const std::string& path);
  // Drops `entry` from the cache unless it was replaced meanwhile.
  void Forget(const CacheEntry* entry);
  // The file's spec (validated) and both networks' weights; optimizer state is not read.
  static absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path,
                                                          const ScoringOptions& options);

  const ScoringOptions options_;

  mutable absl::Mutex mu_;
  // Most recently used first; index_ maps a path to its position.
  std::list<std::shared_ptr<CacheEntry>> lru_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::list<std::shared_ptr<CacheEntry>>::iterator> index_
      ABSL_GUARDED_BY(mu_);
  int64_t models_loaded_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gan::server

#endif  // GAN_SERVER_SCORING_ENGINE_H_
