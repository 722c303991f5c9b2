#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/commands/commands.h"
#include "client/output.h"
#include "gan/v1/service.grpc.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "proto/activation_names.h"

namespace gan::ganctl {
namespace {

// Reads `path` into `spec`, accepting protobuf JSON or text format. Reports the problem and
// returns false when the file cannot be read or parsed.
bool ReadSpecFile(const std::string& path, gan::v1::JobSpec* spec) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    ReportError(absl::StrCat("cannot read ", path));
    return false;
  }
  std::string text;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), f)) > 0;) text.append(buffer, n);
  std::fclose(f);
  if (!google::protobuf::util::JsonStringToMessage(text, spec).ok() &&
      !google::protobuf::TextFormat::ParseFromString(text, spec)) {
    ReportError(absl::StrCat(path, " is neither a JSON nor a text-format JobSpec"));
    return false;
  }
  return true;
}

}  // namespace

int Submit(Connection& connection, const SubmitOptions& options) {
  gan::v1::JobSpec spec;
  if (!options.spec_file.empty()) {
    if (!ReadSpecFile(options.spec_file, &spec)) return kExitFileError;
  } else {
    spec.set_preset(options.preset);
  }
  if (options.steps > 0) spec.set_steps(options.steps);
  if (options.epochs > 0) spec.set_epochs(options.epochs);
  if (!options.dataset.empty()) spec.set_dataset(options.dataset);
  if (options.batch > 0) spec.set_batch_size(options.batch);
  if (options.seed > 0) spec.set_seed(options.seed);
  if (!options.hidden_activation.empty()) {
    absl::StatusOr<gan::v1::Activation> activation =
        gan::ParseActivationName(options.hidden_activation);
    if (!activation.ok()) {
      ReportError(absl::StrCat("--hidden_activation: ", activation.status().message()));
      return kExitUsage;
    }
    *spec.mutable_discriminator_hidden_activation() = *activation;
  }
  if (!options.init_from.empty()) {
    const std::vector<std::string> parts = absl::StrSplit(options.init_from, '@');
    int64_t step = 0;
    if (parts.size() > 2 || parts[0].empty() ||
        (parts.size() == 2 && (!absl::SimpleAtoi(parts[1], &step) || step < 1))) {
      ReportError("--init_from: expected JOB or JOB@STEP (a positive checkpoint step)");
      return kExitUsage;
    }
    spec.mutable_init_from()->set_job_id(parts[0]);
    spec.mutable_init_from()->set_checkpoint_step(step);
    spec.mutable_init_from()->set_init_optimizer(options.init_optimizer);
  } else if (options.init_optimizer) {
    ReportError("--init_optimizer needs --init_from");
    return kExitUsage;
  }
  if (options.pytorch_defaults) spec.set_pytorch_defaults(true);

  gan::v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(options.request_id);
  gan::v1::Job job;
  grpc::ClientContext context;
  connection.PrepareCall(&context);
  const grpc::Status status = connection.training().SubmitJob(&context, request, &job);
  if (!status.ok()) return ReportRpcError(status);
  if (connection.options().json) {
    PrintMessage(/*json=*/true, job);
  } else {
    std::printf("%s\n", job.job_id().c_str());
  }
  std::fflush(stdout);
  return options.watch ? Watch(connection, job.job_id()) : kExitOk;
}

}  // namespace gan::ganctl
