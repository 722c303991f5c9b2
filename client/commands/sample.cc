#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/types/span.h"
#include "client/commands/commands.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"
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
  const absl::Status written = WritePngGrid(
      options.out,
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(pixels.data()), pixels.size()),
      response.count(), response.height(), response.width(), response.channels(), options.columns);
  if (!written.ok()) {
    ReportError(written.message());
    return kExitFileError;
  }
  std::printf("%s\n", options.out.c_str());
  return kExitOk;
}

}  // namespace gan::ganctl
