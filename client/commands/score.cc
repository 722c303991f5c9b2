#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "absl/status/statusor.h"
#include "client/commands/commands.h"
#include "client/image_files.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"

namespace gan::ganctl {

int Score(Connection& connection, const ScoreOptions& options) {
  // Bounds the buffers LoadImages sizes from the shape (and keeps its products from overflowing).
  constexpr int64_t kMaxImageBytes = int64_t{1} << 30;
  if (options.height < 1 || options.width < 1 || options.channels < 1 ||
      int64_t{options.height} * options.width > kMaxImageBytes / options.channels) {
    ReportError(
        "--height, --width and --channels must be positive, with at most 2^30 bytes per image");
    return kExitUsage;
  }
  const absl::StatusOr<LoadedImages> images =
      LoadImages(options.files, options.height, options.width, options.channels, options.first);
  if (!images.ok()) {
    ReportError(images.status().message());
    return kExitFileError;
  }

  gan::v1::ScoreRequest request;
  request.set_job_id(options.job_id);
  request.set_checkpoint_step(options.checkpoint_step);
  for (int64_t d : {static_cast<int64_t>(images->names.size()), int64_t{options.height},
                    int64_t{options.width}, int64_t{options.channels}}) {
    request.add_shape(d);
  }
  request.set_uint8_pixels(images->pixels.data(), images->pixels.size());
  gan::v1::ScoreResponse response;
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  const grpc::Status status = connection.scoring().Score(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status);
  if (connection.options().json) {
    PrintMessage(/*json=*/true, response);
    return kExitOk;
  }
  // A response holds one probability per image sent; never index past the names.
  const size_t scored =
      std::min(static_cast<size_t>(response.probabilities_size()), images->names.size());
  if (!options.summary) {
    for (size_t i = 0; i < scored; ++i) {
      std::printf("%s\t%.6f\n", images->names[i].c_str(), response.probabilities(i));
    }
    return kExitOk;
  }
  for (size_t f = 0; f < options.files.size(); ++f) {
    int64_t count = 0;
    double sum = 0, low = 1, high = 0;
    for (size_t i = 0; i < scored; ++i) {
      if (images->file_index[i] != f) continue;
      const double p = response.probabilities(static_cast<int>(i));
      ++count, sum += p, low = std::min(low, p), high = std::max(high, p);
    }
    if (count == 0) continue;
    std::printf("%s: %lld image%s, probability real: mean %.3f (min %.3f, max %.3f)\n",
                options.files[f].c_str(), static_cast<long long>(count), count == 1 ? "" : "s",
                sum / count, low, high);
  }
  return kExitOk;
}

}  // namespace gan::ganctl
