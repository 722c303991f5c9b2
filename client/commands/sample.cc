#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "client/commands/commands.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"
#include "io/idx_writer.h"
#include "io/png.h"

namespace gan::ganctl {

int Sample(Connection& connection, const SampleOptions& options) {
  gan::v1::SampleImagesRequest request;
  request.set_job_id(options.job_id);
  request.set_count(options.count);
  request.set_seed(options.seed);
  request.set_checkpoint_step(options.checkpoint_step);
  gan::v1::SampleImagesResponse response;
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  const grpc::Status status = connection.training().SampleImages(&context, request, &response);
  if (!status.ok()) return ReportRpcError(status);

  const std::string& pixels = response.pixels();
  const auto bytes =
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(pixels.data()), pixels.size());
  if (absl::EndsWith(options.out, ".idx")) {
    if (response.channels() != 1) {
      ReportError(
          absl::StrCat("--out: an IDX file holds one-channel images and this generator "
                       "draws ",
                       response.channels(), " channels; write a .png instead"));
      return kExitUsage;
    }
    const absl::Status written =
        WriteIdxFile(options.out, {response.count(), response.height(), response.width()}, bytes);
    if (!written.ok()) {
      ReportError(written.message());
      return kExitFileError;
    }
    std::printf("%s\n", options.out.c_str());
    return kExitOk;
  }
  const absl::Status written = WritePngGrid(options.out, bytes, response.count(), response.height(),
                                            response.width(), response.channels(), options.columns);
  if (!written.ok()) {
    ReportError(written.message());
    return kExitFileError;
  }
  std::printf("%s\n", options.out.c_str());
  return kExitOk;
}

}  // namespace gan::ganctl
