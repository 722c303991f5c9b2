#ifndef GAN_CORE_SCORER_H_
#define GAN_CORE_SCORER_H_

// Discriminator inference on batches of any size: n images run in chunks of `chunk`, and a chunk
// of fewer goes through the smallest power-of-two network that holds it (padded), so a batch of
// n <= chunk costs a network sized for n, not for `chunk`. Networks are created on first use and
// cached, all sharing the read-only weights of one ParameterStore, so at most log2(chunk) + 2 of
// them ever exist and no request size creates primitives per request. Networks sized for at most
// `single_thread_images` images are created and run on one OpenMP thread: waking a team and its
// barriers cost more than such a pass gains from a second core. Not thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model_shapes.h"
#include "core/parameter_store.h"
#include "core/sequential.h"

namespace gan {

class Scorer {
 public:
  // `discriminator` holds the layers up to the logit (as GanShapes::discriminator); `params`
  // outlives the scorer. single_thread_images 0: every network runs on the caller's OpenMP team.
  Scorer(std::vector<LayerShape> discriminator, ParameterStore* params, int64_t chunk = 64,
         int64_t single_thread_images = 0);

  // images: (n, C, H, W) in [-1, 1]; writes n logits and n probabilities (sigmoid).
  absl::Status Score(absl::Span<const float> images, int64_t n, absl::Span<float> logits,
                     absl::Span<float> probabilities);

  // Floats of one image (C * H * W).
  int64_t image_floats() const { return image_floats_; }

 private:
  // The network size (images) of a chunk of `batch` images.
  int64_t SizeFor(int64_t batch) const;
  absl::StatusOr<Sequential*> NetworkFor(int64_t size);

  std::vector<LayerShape> layers_;
  ParameterStore* params_;
  int64_t chunk_;
  int64_t single_thread_images_;
  int64_t image_floats_;
  std::map<int64_t, std::unique_ptr<Sequential>> networks_;
};

}  // namespace gan

#endif  // GAN_CORE_SCORER_H_
