#include "server/scoring_engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "core/checkpoint.h"
#include "core/parameter_store.h"
#include "core/safetensors.h"
#include "core/sampler.h"
#include "core/scorer.h"
#include "io/status_macros.h"

namespace gan::server {

// Identifies one version of a file: an atomic rewrite (temp file + rename) changes the inode, an
// in-place one the mtime or size.
struct FileVersion {
  int64_t mtime_ns = 0;
  int64_t size = 0;
  uint64_t device = 0;
  uint64_t inode = 0;

  bool operator==(const FileVersion& o) const {
    return mtime_ns == o.mtime_ns && size == o.size && device == o.device && inode == o.inode;
  }
};

// A loaded checkpoint: both networks' weights and the inference networks over them.
struct ScoringEngine::Model {
  int64_t step = 0;
  gan::v1::NoiseSpec noise;
  GanShapes shapes;
  int height = 0, width = 0, channels = 0;
  std::unique_ptr<ParameterStore> generator, discriminator;
  std::unique_ptr<Scorer> scorer;
  std::unique_ptr<Sampler> sampler;  // built by the first Sample
};

struct ScoringEngine::CacheEntry {
  CacheEntry(std::string path, FileVersion version) : path(std::move(path)), version(version) {}

  const std::string path;
  const FileVersion version;
  // Serializes loading and every use of `model` (its networks are not thread-safe).
  absl::Mutex mu;
  bool attempted ABSL_GUARDED_BY(mu) = false;
  absl::Status load_status ABSL_GUARDED_BY(mu);
  std::unique_ptr<Model> model ABSL_GUARDED_BY(mu);
};

namespace {

template <typename... Parts>
absl::Status InvalidArgument(absl::string_view field, const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", parts...));
}

// "(2, 32, 32, 1)".
std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

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

ScoringOptions Sanitized(ScoringOptions options) {
  options.max_cached_models = std::max(options.max_cached_models, 1);
  options.chunk = std::max<int64_t>(options.chunk, 1);
  return options;
}

// Checks the request's shape against the limits without the model: 4 positive dims, an element
// count that fits in int64 (as bytes of float32, too) and N within the limit. Returns N*H*W*C.
absl::StatusOr<int64_t> CheckShape(absl::Span<const int64_t> shape, int64_t max_batch) {
  if (shape.size() != 4) {
    return InvalidArgument("shape", "expected 4 dimensions (N, H, W, C), got ", shape.size());
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] <= 0) {
      return InvalidArgument("shape", "every dimension must be positive, got ", ShapeString(shape));
    }
  }
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(elements, d, &elements)) {
      return InvalidArgument("shape", "element count overflows");
    }
  }
  int64_t float_bytes;
  if (__builtin_mul_overflow(elements, int64_t{sizeof(float)}, &float_bytes)) {
    return InvalidArgument("shape", "element count overflows");
  }
  if (shape[0] > max_batch) {
    return InvalidArgument("shape", "N ", shape[0], " exceeds --max_score_batch ", max_batch);
  }
  return elements;
}

float LoadFloatLittleEndian(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  const uint32_t bits =
      uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// NHWC payload -> NCHW floats in [-1, 1]. The payload's length has been checked.
void ToNchw(const gan::v1::ScoreRequest& request, int64_t n, int64_t h, int64_t w, int64_t c,
            std::vector<float>* images) {
  const int64_t plane = h * w;
  const bool uint8 = request.pixels_case() == gan::v1::ScoreRequest::kUint8Pixels;
  const char* data = uint8 ? request.uint8_pixels().data() : request.float_pixels().data();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < plane; ++p) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t src = (i * plane + p) * c + ch;  // NHWC
        const float v = uint8 ? static_cast<unsigned char>(data[src]) / 127.5f - 1.0f
                              : LoadFloatLittleEndian(data + src * 4);
        (*images)[(i * c + ch) * plane + p] = v;  // NCHW
      }
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ScoringEngine::Model>> ScoringEngine::LoadModel(
    const std::string& path, const ScoringOptions& options) {
  GAN_ASSIGN_OR_RETURN(SafeTensors checkpoint, ReadSafeTensorsFile(path));  // names the path
  absl::StatusOr<gan::v1::GanSpec> spec = CheckpointSpec(checkpoint);
  if (!spec.ok()) return WithPath(path, spec.status());
  absl::StatusOr<GanShapes> shapes = ValidateGanSpec(*spec, options.limits);
  if (!shapes.ok()) return WithPath(path, shapes.status());
  absl::StatusOr<int64_t> step = CheckpointStep(checkpoint);
  if (!step.ok()) return WithPath(path, step.status());

  auto model = std::make_unique<Model>();
  model->step = *step;
  model->noise = spec->noise();
  model->height = spec->image_shape().height();
  model->width = spec->image_shape().width();
  model->channels = spec->image_shape().channels();
  model->shapes = *std::move(shapes);
  model->generator = std::make_unique<ParameterStore>("generator", model->shapes.generator);
  model->discriminator =
      std::make_unique<ParameterStore>("discriminator", model->shapes.discriminator);
  if (absl::Status s = LoadNetworkWeights(checkpoint, model->generator.get()); !s.ok()) {
    return WithPath(path, s);
  }
  if (absl::Status s = LoadNetworkWeights(checkpoint, model->discriminator.get()); !s.ok()) {
    return WithPath(path, s);
  }
  model->scorer = std::make_unique<Scorer>(model->shapes.discriminator, model->discriminator.get(),
                                           options.chunk);
  return model;
}

ScoringEngine::ScoringEngine(const ScoringOptions& options) : options_(Sanitized(options)) {}

ScoringEngine::~ScoringEngine() = default;

int ScoringEngine::cached_models() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(lru_.size());
}

int64_t ScoringEngine::models_loaded() const {
  absl::MutexLock lock(&mu_);
  return models_loaded_;
}

absl::StatusOr<std::shared_ptr<ScoringEngine::CacheEntry>> ScoringEngine::Acquire(
    const std::string& path) {
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
    lru_.erase(it->second);  // stale: requests still using it keep it alive
    index_.erase(it);
  }
  lru_.push_front(std::make_shared<CacheEntry>(path, version));
  index_[path] = lru_.begin();
  while (static_cast<int>(lru_.size()) > options_.max_cached_models) {
    index_.erase(lru_.back()->path);
    lru_.pop_back();
  }
  return lru_.front();
}

void ScoringEngine::Forget(const CacheEntry* entry) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(entry->path);
  if (it != index_.end() && it->second->get() == entry) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

absl::Status ScoringEngine::WithModel(const std::string& path,
                                      absl::FunctionRef<absl::Status(Model&)> fn) {
  GAN_ASSIGN_OR_RETURN(std::shared_ptr<CacheEntry> entry, Acquire(path));
  absl::MutexLock lock(&entry->mu);
  if (!entry->attempted) {
    // The first request for this file version loads it; concurrent ones wait on entry->mu.
    entry->attempted = true;
    absl::StatusOr<std::unique_ptr<Model>> model = LoadModel(path, options_);
    if (model.ok()) {
      entry->model = *std::move(model);
      absl::MutexLock cache_lock(&mu_);
      ++models_loaded_;
    } else {
      entry->load_status = model.status();
      Forget(entry.get());  // the next request tries again
    }
  }
  if (entry->model == nullptr) return entry->load_status;
  return fn(*entry->model);
}

absl::StatusOr<gan::v1::ScoreResponse> ScoringEngine::Score(const std::string& checkpoint_path,
                                                            const gan::v1::ScoreRequest& request) {
  const absl::Span<const int64_t> shape(request.shape().data(), request.shape().size());
  GAN_ASSIGN_OR_RETURN(const int64_t elements, CheckShape(shape, options_.max_score_batch));
  if (request.pixels_case() == gan::v1::ScoreRequest::PIXELS_NOT_SET) {
    return InvalidArgument("pixels", "set uint8_pixels or float_pixels");
  }

  gan::v1::ScoreResponse response;
  GAN_RETURN_IF_ERROR(WithModel(checkpoint_path, [&](Model& model) -> absl::Status {
    const int64_t n = shape[0], h = shape[1], w = shape[2], c = shape[3];
    if (h != model.height || w != model.width || c != model.channels) {
      return InvalidArgument("shape", "expected (N, ", model.height, ", ", model.width, ", ",
                             model.channels, "), got ", ShapeString(shape));
    }
    // CheckShape made sure elements * 4 fits.
    if (request.pixels_case() == gan::v1::ScoreRequest::kUint8Pixels) {
      const int64_t bytes = static_cast<int64_t>(request.uint8_pixels().size());
      if (bytes != elements) {
        return InvalidArgument("uint8_pixels", bytes, " bytes for shape ", ShapeString(shape),
                               " which needs ", elements);
      }
    } else {
      const std::string& payload = request.float_pixels();
      const int64_t bytes = static_cast<int64_t>(payload.size());
      if (bytes != elements * 4) {
        return InvalidArgument("float_pixels", bytes, " bytes for shape ", ShapeString(shape),
                               " which needs ", elements * 4, " (4 per float32 value)");
      }
      for (int64_t i = 0; i < elements; ++i) {
        const float v = LoadFloatLittleEndian(payload.data() + i * 4);
        if (!std::isfinite(v)) {
          return InvalidArgument("float_pixels", "value ", v, " at index ", i,
                                 " is not a finite number");
        }
        if (v < -1.0f || v > 1.0f) {
          return InvalidArgument("float_pixels", "value ", v, " at index ", i,
                                 " is outside [-1, 1]");
        }
      }
    }

    std::vector<float> images(static_cast<size_t>(elements));
    ToNchw(request, n, h, w, c, &images);
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
    return InvalidArgument("count", count, " is outside [1, ", options_.max_sample_count,
                           "] (--max_sample_count)");
  }
  gan::v1::SampleImagesResponse response;
  GAN_RETURN_IF_ERROR(WithModel(checkpoint_path, [&](Model& model) -> absl::Status {
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
