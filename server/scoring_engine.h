#ifndef GAN_SERVER_SCORING_ENGINE_H_
#define GAN_SERVER_SCORING_ENGINE_H_

// Scores images with a checkpoint's discriminator and draws samples from its generator, over the
// checkpoints of a ModelCache (server/model_cache.h); requests are decoded and validated by
// server/score_request.h before any model is touched.
//
// Thread-safe. Calls block while a checkpoint loads and while the model runs: callers run them
// off gRPC threads.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/gan_spec.h"
#include "gan/v1/service.pb.h"
#include "server/model_cache.h"

namespace gan::server {

// Filled from the server's Options (server/server.h), the one home of their defaults.
struct ScoringOptions {
  // Loaded checkpoints kept in memory (least recently used evicted first); at least 1.
  int max_cached_models = 1;
  // Images per inference pass (the Scorer's and Sampler's fixed network size); at least 1.
  int64_t chunk = 1;
  // Most images in one ScoreRequest; more is INVALID_ARGUMENT naming the limit.
  int64_t max_score_batch = 0;
  // Most images in one Sample call.
  int64_t max_sample_count = 0;
  // Caps applied to the spec stored in a checkpoint.
  GanLimits limits;
};

class ScoringEngine {
 public:
  explicit ScoringEngine(const ScoringOptions& options);

  ScoringEngine(const ScoringEngine&) = delete;
  ScoringEngine& operator=(const ScoringEngine&) = delete;

  // Scores request.shape = (N, H, W, C) images (DecodeScoreImages) with the discriminator of
  // `checkpoint_path`. Returns one logit and sigmoid probability per image and the checkpoint's
  // step. request.job_id and request.checkpoint_step are ignored (the caller resolved them to the
  // path). INVALID_ARGUMENT naming the field for a bad request; a missing or unreadable
  // checkpoint gives the loader's status with the path in the message.
  absl::StatusOr<gan::v1::ScoreResponse> Score(const std::string& checkpoint_path,
                                               const gan::v1::ScoreRequest& request);

  // `count` images (NHWC uint8) from the generator of `checkpoint_path`, BatchNorm in inference
  // mode. Image i depends only on (checkpoint, seed, i). INVALID_ARGUMENT when count is outside
  // [1, max_sample_count].
  absl::StatusOr<gan::v1::SampleImagesResponse> Sample(const std::string& checkpoint_path,
                                                       int32_t count, uint64_t seed);

  // Checkpoints currently in the cache (for tests and metrics).
  int cached_models() const { return models_.cached_models(); }
  // Checkpoint files read from disk since construction (a cache miss or a changed file).
  int64_t models_loaded() const { return models_.models_loaded(); }

 private:
  const ScoringOptions options_;
  ModelCache models_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_SCORING_ENGINE_H_
