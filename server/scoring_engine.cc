#include "server/scoring_engine.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/types/span.h"
#include "io/status_macros.h"

namespace gan::server {
namespace {

// Batch keys: the network, then the model's own key.
constexpr char kScoreKey[] = "discriminator|";
constexpr char kGenerateKey[] = "generator|";

ModelCacheOptions CacheOptions(const ScoringOptions& options) {
  ModelCacheOptions cache;
  cache.max_cached_models = options.max_cached_models;
  cache.chunk = options.chunk;
  cache.single_thread_images = options.single_thread_images;
  cache.limits = options.limits;
  return cache;
}

BatcherOptions BatchOptions(const ScoringOptions& options) {
  BatcherOptions batch;
  batch.max_batch_images = std::max<int64_t>(options.chunk, 1);
  batch.timeout = options.batch_timeout;
  batch.max_queued_requests = options.max_queued_requests;
  return batch;
}

bool IsCancelled(const RequestLife& life) { return life.cancelled && life.cancelled(); }

}  // namespace

ModelRef ModelRef::File(const std::string& path) {
  return ModelRef{absl::StrCat("file:", path), path,
                  [path]() -> absl::StatusOr<std::string> { return path; }};
}

class ScoringEngine::ScoreItem : public BatchItem {
 public:
  ScoreItem(ModelRef model, std::unique_ptr<ImageTensor> images, RequestLife life,
            ScoreCallback done)
      : BatchItem(images->images(), life.deadline),
        model(std::move(model)),
        tensor(std::move(images)),
        life(std::move(life)),
        done(std::move(done)) {}

  bool Cancelled() const override { return IsCancelled(life); }
  void Fail(const absl::Status& status) override { done(status); }

  const ModelRef model;
  const std::unique_ptr<ImageTensor> tensor;
  const RequestLife life;
  ScoreCallback done;
};

class ScoringEngine::GenerateItem : public BatchItem {
 public:
  GenerateItem(ModelRef model, std::unique_ptr<NoiseTensor> noise, RequestLife life,
               GenerateCallback done)
      : BatchItem(noise->rows(), life.deadline),
        model(std::move(model)),
        noise(std::move(noise)),
        life(std::move(life)),
        done(std::move(done)) {}

  bool Cancelled() const override { return IsCancelled(life); }
  void Fail(const absl::Status& status) override { done(status); }

  const ModelRef model;
  const std::unique_ptr<NoiseTensor> noise;
  const RequestLife life;
  GenerateCallback done;
};

ScoringEngine::ScoringEngine(const ScoringOptions& options, Executor* executor)
    : options_(options), models_(CacheOptions(options)) {
  if (executor == nullptr) {
    own_executor_ = std::make_unique<Executor>("scoring", std::max(options.threads, 1),
                                               std::max(options.max_queued_requests, 1));
    executor = own_executor_.get();
  }
  batcher_ = std::make_unique<Batcher>(
      BatchOptions(options), executor,
      [this](const std::string& key, BatchItems items) { RunBatch(key, std::move(items)); },
      options.metrics);
}

ScoringEngine::~ScoringEngine() {
  // Batches in flight finish before the batcher goes; an external executor was drained by its
  // owner already.
  if (own_executor_ != nullptr) own_executor_->Shutdown();
  batcher_.reset();
}

void ScoringEngine::ScoreAsync(ModelRef model, std::unique_ptr<ImageTensor> images,
                               RequestLife life, ScoreCallback done) {
  const std::string key = absl::StrCat(kScoreKey, model.key);
  const std::string label = model.label;
  batcher_->Submit(key, label,
                   std::make_unique<ScoreItem>(std::move(model), std::move(images), std::move(life),
                                               std::move(done)));
}

void ScoringEngine::ScoreRequestAsync(ModelRef model, const gan::v1::ScoreRequest& request,
                                      RequestLife life, ScoreCallback done) {
  // What can be checked without the model is checked before queueing.
  absl::StatusOr<std::unique_ptr<ImageTensor>> images =
      ScoreRequestImages(request, options_.max_score_batch);
  if (!images.ok()) {
    done(images.status());
    return;
  }
  ScoreAsync(std::move(model), *std::move(images), std::move(life), std::move(done));
}

void ScoringEngine::GenerateAsync(ModelRef model, std::unique_ptr<NoiseTensor> noise,
                                  RequestLife life, GenerateCallback done) {
  if (noise->rows() < 1 || noise->rows() > options_.max_sample_count) {
    done(absl::InvalidArgumentError(absl::StrCat("noise: ", noise->rows(), " rows is outside [1, ",
                                                 options_.max_sample_count,
                                                 "] (--max_sample_count)")));
    return;
  }
  const std::string key = absl::StrCat(kGenerateKey, model.key);
  const std::string label = model.label;
  batcher_->Submit(key, label,
                   std::make_unique<GenerateItem>(std::move(model), std::move(noise),
                                                  std::move(life), std::move(done)));
}

void ScoringEngine::RunBatch(const std::string& key, BatchItems items) {
  if (absl::StartsWith(key, kGenerateKey)) {
    RunGenerateBatch(std::move(items));
  } else {
    RunScoreBatch(std::move(items));
  }
}

void ScoringEngine::RunScoreBatch(BatchItems items) {
  // Every item of a batch has the same key, hence the same checkpoint.
  const ModelRef& model = static_cast<ScoreItem&>(*items.front()).model;
  absl::StatusOr<std::string> path = model.path();
  // Answers are delivered after the model's mutex is released.
  std::vector<std::pair<ScoreItem*, absl::StatusOr<ScoreResult>>> results;
  absl::Status status = path.status();
  if (path.ok()) {
    status = models_.WithModel(*path, [&](LoadedModel& m) -> absl::Status {
      // O(1) checks first: nothing is allocated for a request whose payload does not fit.
      std::vector<ScoreItem*> fitting;
      int64_t images = 0;
      for (auto& base : items) {
        auto* item = static_cast<ScoreItem*>(base.get());
        absl::Status fits = item->tensor->Check(m.height, m.width, m.channels);
        if (fits.ok()) {
          fitting.push_back(item);
          images += item->images();
        } else {
          results.emplace_back(item, fits);
        }
      }
      if (fitting.empty()) return absl::OkStatus();
      const int64_t image_floats = m.scorer->image_floats();
      std::vector<float> input(static_cast<size_t>(images * image_floats));
      std::vector<std::pair<ScoreItem*, int64_t>> decoded;  // item, first image
      int64_t n = 0;
      for (ScoreItem* item : fitting) {
        absl::Status valid = item->tensor->Decode(
            absl::MakeSpan(input.data() + n * image_floats, item->images() * image_floats));
        if (valid.ok()) {
          decoded.emplace_back(item, n);
          n += item->images();
        } else {
          results.emplace_back(item, valid);  // the next request overwrites its slot
        }
      }
      if (decoded.empty()) return absl::OkStatus();
      std::vector<float> logits(n), probabilities(n);
      absl::Status scored = m.scorer->Score(absl::MakeConstSpan(input.data(), n * image_floats), n,
                                            absl::MakeSpan(logits), absl::MakeSpan(probabilities));
      for (const auto& [item, first] : decoded) {
        if (!scored.ok()) {
          results.emplace_back(item, scored);
          continue;
        }
        ScoreResult result;
        result.logits.assign(logits.begin() + first, logits.begin() + first + item->images());
        result.probabilities.assign(probabilities.begin() + first,
                                    probabilities.begin() + first + item->images());
        result.checkpoint_step = m.step;
        results.emplace_back(item, std::move(result));
      }
      return absl::OkStatus();
    });
  }
  if (!status.ok()) {  // no model: every request gets the loader's status
    for (auto& item : items) item->Fail(status);
    return;
  }
  for (auto& [item, result] : results) item->done(std::move(result));
}

void ScoringEngine::RunGenerateBatch(BatchItems items) {
  const ModelRef& model = static_cast<GenerateItem&>(*items.front()).model;
  absl::StatusOr<std::string> path = model.path();
  std::vector<std::pair<GenerateItem*, absl::StatusOr<GenerateResult>>> results;
  absl::Status status = path.status();
  if (path.ok()) {
    status = models_.WithModel(*path, [&](LoadedModel& m) -> absl::Status {
      const int64_t dim = m.noise.dim();
      std::vector<GenerateItem*> fitting;
      int64_t rows = 0;
      for (auto& base : items) {
        auto* item = static_cast<GenerateItem*>(base.get());
        absl::Status fits = item->noise->Check(dim);
        if (fits.ok()) {
          fitting.push_back(item);
          rows += item->images();
        } else {
          results.emplace_back(item, fits);
        }
      }
      if (fitting.empty()) return absl::OkStatus();
      GAN_ASSIGN_OR_RETURN(Sampler * sampler, GeneratorSampler(m, options_.chunk));
      std::vector<float> noise(static_cast<size_t>(rows * dim));
      std::vector<std::pair<GenerateItem*, int64_t>> decoded;
      int64_t n = 0;
      for (GenerateItem* item : fitting) {
        absl::Status valid =
            item->noise->Decode(absl::MakeSpan(noise.data() + n * dim, item->images() * dim));
        if (valid.ok()) {
          decoded.emplace_back(item, n);
          n += item->images();
        } else {
          results.emplace_back(item, valid);
        }
      }
      if (decoded.empty()) return absl::OkStatus();
      const int64_t image_floats = sampler->image_floats();
      std::vector<float> images(static_cast<size_t>(n * image_floats));
      absl::Status generated = sampler->GenerateFromNoise(
          absl::MakeConstSpan(noise.data(), n * dim), n, absl::MakeSpan(images));
      for (const auto& [item, first] : decoded) {
        if (!generated.ok()) {
          results.emplace_back(item, generated);
          continue;
        }
        GenerateResult result;
        result.images.assign(images.begin() + first * image_floats,
                             images.begin() + (first + item->images()) * image_floats);
        result.height = m.height;
        result.width = m.width;
        result.channels = m.channels;
        result.checkpoint_step = m.step;
        results.emplace_back(item, std::move(result));
      }
      return absl::OkStatus();
    });
  }
  if (!status.ok()) {
    for (auto& item : items) item->Fail(status);
    return;
  }
  for (auto& [item, result] : results) item->done(std::move(result));
}

absl::StatusOr<gan::v1::ScoreResponse> ScoringEngine::Score(const std::string& checkpoint_path,
                                                            const gan::v1::ScoreRequest& request) {
  absl::Notification finished;
  absl::StatusOr<ScoreResult> result;
  ScoreRequestAsync(ModelRef::File(checkpoint_path), request, RequestLife{},
                    [&](absl::StatusOr<ScoreResult> r) {
                      result = std::move(r);
                      finished.Notify();
                    });
  finished.WaitForNotification();
  if (!result.ok()) return result.status();
  gan::v1::ScoreResponse response;
  response.mutable_logits()->Add(result->logits.begin(), result->logits.end());
  response.mutable_probabilities()->Add(result->probabilities.begin(), result->probabilities.end());
  response.set_checkpoint_step(result->checkpoint_step);
  return response;
}

absl::StatusOr<gan::v1::SampleImagesResponse> ScoringEngine::Sample(
    const std::string& checkpoint_path, int32_t count, uint64_t seed) {
  if (count < 1 || count > options_.max_sample_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "count: ", count, " is outside [1, ", options_.max_sample_count, "] (--max_sample_count)"));
  }
  gan::v1::SampleImagesResponse response;
  GAN_RETURN_IF_ERROR(models_.WithModel(checkpoint_path, [&](LoadedModel& model) -> absl::Status {
    GAN_ASSIGN_OR_RETURN(Sampler * sampler, GeneratorSampler(model, options_.chunk));
    std::vector<float> images(static_cast<size_t>(count) * sampler->image_floats());
    GAN_RETURN_IF_ERROR(sampler->Generate(count, seed, absl::MakeSpan(images)));
    const std::vector<uint8_t> pixels =
        ToPixelsNhwc(images, count, model.channels, model.height, model.width);
    response.set_count(count);
    response.set_height(model.height);
    response.set_width(model.width);
    response.set_channels(model.channels);
    response.set_pixels(reinterpret_cast<const char*>(pixels.data()), pixels.size());
    response.set_checkpoint_step(model.step);
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<ModelInfo> ScoringEngine::Info(const std::string& checkpoint_path) {
  ModelInfo info;
  GAN_RETURN_IF_ERROR(models_.WithModel(checkpoint_path, [&](LoadedModel& model) {
    info.height = model.height;
    info.width = model.width;
    info.channels = model.channels;
    info.noise_dim = model.noise.dim();
    info.checkpoint_step = model.step;
    return absl::OkStatus();
  }));
  return info;
}

}  // namespace gan::server
