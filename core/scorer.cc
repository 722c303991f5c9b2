#include "core/scorer.h"

#include <omp.h>

#include <algorithm>

#include "absl/status/status.h"
#include "core/loss.h"
#include "io/status_macros.h"

namespace gan {
namespace {

// The calling thread's OpenMP team size set to `threads` (when > 0; else untouched) for the scope.
// oneDNN sizes a primitive's work split for the team it is created under, so a network is always
// created and run under the same one.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int threads) : previous_(threads > 0 ? omp_get_max_threads() : 0) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  ~ScopedOmpThreads() {
    if (previous_ > 0) omp_set_num_threads(previous_);
  }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int previous_;  // 0: nothing to restore
};

}  // namespace

Scorer::Scorer(std::vector<LayerShape> discriminator, ParameterStore* params, int64_t chunk,
               int64_t single_thread_images)
    : layers_(std::move(discriminator)),
      params_(params),
      chunk_(chunk),
      single_thread_images_(single_thread_images),
      image_floats_(NumElements(layers_.front().input)) {}

int64_t Scorer::SizeFor(int64_t batch) const {
  int64_t size = 1;
  while (size < batch && size < chunk_) size *= 2;
  return std::min(size, chunk_);
}

absl::StatusOr<Sequential*> Scorer::NetworkFor(int64_t size) {
  auto it = networks_.find(size);
  if (it == networks_.end()) {
    GAN_ASSIGN_OR_RETURN(std::unique_ptr<Sequential> net,
                         Sequential::Create(layers_, params_, {size, Pass::kInference, false}));
    it = networks_.emplace(size, std::move(net)).first;
  }
  return it->second.get();
}

absl::Status Scorer::Score(absl::Span<const float> images, int64_t n, absl::Span<float> logits,
                           absl::Span<float> probabilities) {
  if (n < 0 || static_cast<int64_t>(images.size()) != n * image_floats_ ||
      static_cast<int64_t>(logits.size()) < n || static_cast<int64_t>(probabilities.size()) < n) {
    return absl::InvalidArgumentError("Score: buffer sizes do not match the image count");
  }
  for (int64_t start = 0; start < n; start += chunk_) {
    const int64_t count = std::min(chunk_, n - start);
    const int64_t size = SizeFor(count);
    ScopedOmpThreads threads(size <= single_thread_images_ ? 1 : 0);
    GAN_ASSIGN_OR_RETURN(Sequential * net, NetworkFor(size));
    absl::Span<float> input = net->input();
    std::copy_n(images.data() + start * image_floats_, count * image_floats_, input.data());
    // Padding rows of a tail network are zeros; their outputs are discarded.
    std::fill(input.begin() + count * image_floats_, input.end(), 0.0f);
    net->Forward();
    const float* out = net->output().data();
    for (int64_t i = 0; i < count; ++i) {
      logits[start + i] = out[i];
      probabilities[start + i] = Sigmoid(out[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace gan
