#include "server/scoring_engine.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "io/status_macros.h"
#include "server/score_request.h"

namespace gan::server {
namespace {

ModelCacheOptions CacheOptions(const ScoringOptions& options) {
  ModelCacheOptions cache;
  cache.max_cached_models = options.max_cached_models;
  cache.chunk = options.chunk;
  cache.limits = options.limits;
  return cache;
}

}  // namespace

ScoringEngine::ScoringEngine(const ScoringOptions& options)
    : options_(options), models_(CacheOptions(options)) {}

absl::StatusOr<gan::v1::ScoreResponse> ScoringEngine::Score(const std::string& checkpoint_path,
                                                            const gan::v1::ScoreRequest& request) {
  // What can be checked without the model is checked before loading it.
  const absl::Span<const int64_t> shape(request.shape().data(), request.shape().size());
  GAN_RETURN_IF_ERROR(CheckImageShape(shape, options_.max_score_batch).status());
  if (request.pixels_case() == gan::v1::ScoreRequest::PIXELS_NOT_SET) {
    return absl::InvalidArgumentError("pixels: set uint8_pixels or float_pixels");
  }
  gan::v1::ScoreResponse response;
  GAN_RETURN_IF_ERROR(models_.WithModel(checkpoint_path, [&](LoadedModel& model) -> absl::Status {
    GAN_ASSIGN_OR_RETURN(std::vector<float> images,
                         DecodeScoreImages(request, options_.max_score_batch, model.height,
                                           model.width, model.channels));
    const int64_t n = shape[0];
    std::vector<float> logits(n), probabilities(n);
    GAN_RETURN_IF_ERROR(
        model.scorer->Score(images, n, absl::MakeSpan(logits), absl::MakeSpan(probabilities)));
    response.mutable_logits()->Add(logits.begin(), logits.end());
    response.mutable_probabilities()->Add(probabilities.begin(), probabilities.end());
    response.set_checkpoint_step(model.step);
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<gan::v1::SampleImagesResponse> ScoringEngine::Sample(
    const std::string& checkpoint_path, int32_t count, uint64_t seed) {
  if (count < 1 || count > options_.max_sample_count) {
    return absl::InvalidArgumentError(absl::StrCat("count: ", count, " is outside [1, ",
                                                   options_.max_sample_count,
                                                   "] (--max_sample_count)"));
  }
  gan::v1::SampleImagesResponse response;
  GAN_RETURN_IF_ERROR(models_.WithModel(checkpoint_path, [&](LoadedModel& model) -> absl::Status {
    if (model.sampler == nullptr) {
      GAN_ASSIGN_OR_RETURN(
          model.sampler, Sampler::Create(model.shapes.generator, model.generator.get(), model.noise,
                                         options_.chunk));
    }
    std::vector<float> images(static_cast<size_t>(count) * model.sampler->image_floats());
    GAN_RETURN_IF_ERROR(model.sampler->Generate(count, seed, absl::MakeSpan(images)));
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

}  // namespace gan::server
