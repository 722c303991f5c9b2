#ifndef GAN_SERVER_SCORING_ENGINE_H_
#define GAN_SERVER_SCORING_ENGINE_H_

// Scores images with a checkpoint's discriminator and runs its generator, over the checkpoints of
// a ModelCache (server/model_cache.h), with dynamic batching (server/batcher.h): concurrent
// requests for the same model are merged into one network pass of up to `max_batch_images`
// images and split back per request. A batch of n images runs a network sized for n (the
// smallest power of two that holds it, see core/scorer.h), so a lone small request costs little
// and a crowd of them costs one pass. Requests are validated (server/score_request.h) before any
// model is touched and before anything proportional to their claimed shape is allocated.
//
// Thread-safe. The *Async calls only validate what is cheap and queue: they may be called from
// gRPC threads, and their callbacks run on an inference executor thread (or at once, on the
// caller's thread, for a request refused before queueing). Score and Sample block; callers run
// them off gRPC threads.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/gan_spec.h"
#include "gan/v1/service.pb.h"
#include "server/batcher.h"
#include "server/executor.h"
#include "server/model_cache.h"
#include "server/score_request.h"
#include "server/server_metrics.h"

namespace gan::server {

// Filled from the server's Options (server/server.h), the one home of their defaults.
struct ScoringOptions {
  // Loaded checkpoints kept in memory (least recently used evicted first); at least 1.
  int max_cached_models = 1;
  // Most images in one network pass and one dynamic batch (--max_batch_images); a request of
  // more runs in passes of this many. At least 1.
  int64_t chunk = 1;
  // Passes of at most this many images run on one OpenMP thread (--inference_single_thread_images).
  int64_t single_thread_images = 0;
  // How long the first request of a batch waits for others to join it (--batch_timeout_micros).
  absl::Duration batch_timeout = absl::ZeroDuration();
  // Requests waiting for a batch across all models (--max_inference_queue); more are
  // RESOURCE_EXHAUSTED.
  int max_queued_requests = 0;
  // Threads of the engine's own executor, used only when the constructor is given none.
  int threads = 1;
  // Most images in one ScoreRequest; more is INVALID_ARGUMENT naming the limit.
  int64_t max_score_batch = 0;
  // Most images in one Sample call, and rows in one generator request.
  int64_t max_sample_count = 0;
  // Caps applied to the spec stored in a checkpoint.
  GanLimits limits;
  // Batching metrics (queue depth, waits, batch sizes, rejections) when set; must outlive the
  // engine.
  ServerMetrics* metrics = nullptr;
};

// The model a request runs with. Requests with equal keys may share a batch, so they must mean
// the same checkpoint: the key names the job and step (or the file), and `path` finds the file
// once per batch, on an inference thread (it may read the job store).
struct ModelRef {
  std::string key;
  // The model's name in metrics (the job id; "<job id>-generator" for generator requests).
  std::string label;
  std::function<absl::StatusOr<std::string>()> path;

  // A checkpoint file named directly.
  static ModelRef File(const std::string& path);
};

// What a scoring request gets back: one logit and sigmoid probability per image.
struct ScoreResult {
  std::vector<float> logits, probabilities;
  int64_t checkpoint_step = 0;
};

// What a generator request gets back: images (N, C, H, W) in the generator's range.
struct GenerateResult {
  std::vector<float> images;
  int height = 0, width = 0, channels = 0;
  int64_t checkpoint_step = 0;
};

// The image and noise shapes of a checkpoint.
struct ModelInfo {
  int height = 0, width = 0, channels = 0;
  int64_t noise_dim = 0;
  int64_t checkpoint_step = 0;
};

// When a request is abandoned: its deadline, and whether its client has gone (may be null).
struct RequestLife {
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> cancelled;
};

class ScoringEngine {
 public:
  using ScoreCallback = absl::AnyInvocable<void(absl::StatusOr<ScoreResult>)>;
  using GenerateCallback = absl::AnyInvocable<void(absl::StatusOr<GenerateResult>)>;

  // Batches run on `executor` (the server's inference executor), which must outlive the engine
  // and be shut down before it is destroyed; without one the engine makes its own of
  // options.threads threads.
  explicit ScoringEngine(const ScoringOptions& options, Executor* executor = nullptr);
  ~ScoringEngine();

  ScoringEngine(const ScoringEngine&) = delete;
  ScoringEngine& operator=(const ScoringEngine&) = delete;

  // Queues `images` for the discriminator of `model`. `done` gets one logit and probability per
  // image and the checkpoint's step; INVALID_ARGUMENT naming the field for images that do not fit
  // the model; RESOURCE_EXHAUSTED when the queue is full; DEADLINE_EXCEEDED or CANCELLED, without
  // computing, for a request abandoned before its batch ran; a missing or unreadable checkpoint
  // gives the loader's status with the path in the message. The tensor's payload must outlive
  // the call to `done`.
  void ScoreAsync(ModelRef model, std::unique_ptr<ImageTensor> images, RequestLife life,
                  ScoreCallback done);

  // Checks request.shape and that pixels are set (no model needed), then ScoreAsync; a bad
  // request is answered at once, on the caller's thread. `request` must outlive `done`.
  void ScoreRequestAsync(ModelRef model, const gan::v1::ScoreRequest& request, RequestLife life,
                         ScoreCallback done);

  // Queues generator inference on `noise` (one image per row), batched like ScoreAsync. Rows
  // must be in [1, max_sample_count].
  void GenerateAsync(ModelRef model, std::unique_ptr<NoiseTensor> noise, RequestLife life,
                     GenerateCallback done);

  // Scores request.shape = (N, H, W, C) images (DecodeScoreImages) with the discriminator of
  // `checkpoint_path`, through the batcher, and waits (so never on a thread of the engine's
  // executor). request.job_id and request.checkpoint_step are ignored (the caller resolved them
  // to the path).
  absl::StatusOr<gan::v1::ScoreResponse> Score(const std::string& checkpoint_path,
                                               const gan::v1::ScoreRequest& request);

  // `count` images (NHWC uint8) from the generator of `checkpoint_path`, BatchNorm in inference
  // mode. Image i depends only on (checkpoint, seed, i). INVALID_ARGUMENT when count is outside
  // [1, max_sample_count]. Runs on the caller's thread.
  absl::StatusOr<gan::v1::SampleImagesResponse> Sample(const std::string& checkpoint_path,
                                                       int32_t count, uint64_t seed);

  // The shapes of the checkpoint at `checkpoint_path` (loading it if needed). Blocks.
  absl::StatusOr<ModelInfo> Info(const std::string& checkpoint_path);

  int64_t max_score_batch() const { return options_.max_score_batch; }
  int64_t max_sample_count() const { return options_.max_sample_count; }

  // Checkpoints currently in the cache (for tests and metrics).
  int cached_models() const { return models_.cached_models(); }
  // Checkpoint files read from disk since construction (a cache miss or a changed file).
  int64_t models_loaded() const { return models_.models_loaded(); }
  // Requests waiting for a batch.
  int queued() const { return batcher_->queued(); }

 private:
  class ScoreItem;
  class GenerateItem;

  void RunBatch(const std::string& key, BatchItems items);
  void RunScoreBatch(BatchItems items);
  void RunGenerateBatch(BatchItems items);

  const ScoringOptions options_;
  ModelCache models_;
  std::unique_ptr<Executor> own_executor_;  // when the constructor was given none
  std::unique_ptr<Batcher> batcher_;
};

}  // namespace gan::server

#endif  // GAN_SERVER_SCORING_ENGINE_H_
