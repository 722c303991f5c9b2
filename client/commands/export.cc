#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/commands/commands.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"
#include "io/atomic_file.h"

namespace gan::ganctl {

int Export(Connection& connection, const ExportOptions& options) {
  gan::v1::ExportModelRequest request;
  request.set_job_id(options.job_id);
  request.set_model(options.model == "generator"
                        ? gan::v1::ExportModelRequest::MODEL_GENERATOR
                        : gan::v1::ExportModelRequest::MODEL_DISCRIMINATOR);
  request.set_checkpoint_step(options.checkpoint_step);
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  std::unique_ptr<grpc::ClientReader<gan::v1::ExportModelResponse>> reader =
      connection.training().ExportModel(&context, request);
  gan::v1::ExportModelResponse response;
  gan::v1::ExportModelMetadata metadata;
  std::string model;
  bool first = true;
  while (reader->Read(&response)) {
    if (first) {
      metadata = response.metadata();
      first = false;
      // The metadata's size bounds what is kept: a server that sends more is refused.
      if (metadata.total_bytes() < 0 || metadata.total_bytes() > (int64_t{1} << 32)) {
        context.TryCancel();
        reader->Finish();
        ReportError(absl::StrCat("the server announced an invalid model size of ",
                                 metadata.total_bytes(), " bytes"));
        return kExitRpcError;
      }
      model.reserve(static_cast<size_t>(metadata.total_bytes()));
    }
    if (static_cast<int64_t>(model.size() + response.data().size()) > metadata.total_bytes()) {
      context.TryCancel();
      reader->Finish();
      ReportError(absl::StrCat("the server sent more than the ", metadata.total_bytes(),
                               " bytes it announced"));
      return kExitRpcError;
    }
    model += response.data();
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return ReportRpcError(status);
  if (first || static_cast<int64_t>(model.size()) != metadata.total_bytes()) {
    ReportError(absl::StrCat("the stream ended after ", model.size(), " of ",
                             metadata.total_bytes(), " bytes"));
    return kExitRpcError;
  }
  if (const absl::Status written = WriteFileAtomically(options.out, model); !written.ok()) {
    ReportError(written.message());
    return kExitFileError;
  }
  if (connection.options().json) {
    PrintMessage(true, metadata);
  } else {
    std::printf("%s: %s of job %s at step %lld, ONNX opset %lld, %lld bytes\n", options.out.c_str(),
                options.model.c_str(), options.job_id.c_str(),
                static_cast<long long>(metadata.checkpoint_step()),
                static_cast<long long>(metadata.opset_version()),
                static_cast<long long>(metadata.total_bytes()));
  }
  return kExitOk;
}

}  // namespace gan::ganctl
