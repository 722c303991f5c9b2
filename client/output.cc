#include "client/output.h"

#include <cstdio>
#include <string>

#include "absl/strings/strip.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace gan::ganctl {

const char* StatusCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(sizeof(kNames) / sizeof(kNames[0])) ? kNames[i] : "UNKNOWN";
}

int ReportRpcError(const grpc::Status& status) {
  std::fprintf(stderr, "ganctl: %s: %s\n", StatusCodeName(status.error_code()),
               status.error_message().c_str());
  return kExitRpcError;
}

void ReportError(absl::string_view message) {
  std::fprintf(stderr, "ganctl: %.*s\n", static_cast<int>(message.size()), message.data());
}

void PrintMessage(bool json, const google::protobuf::Message& message) {
  std::string out;
  if (json) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(message, &out, options);
    out += "\n";
  } else {
    google::protobuf::TextFormat::PrintToString(message, &out);
  }
  std::fputs(out.c_str(), stdout);
}

std::string JobStateName(gan::v1::JobState state) {
  return std::string(absl::StripPrefix(gan::v1::JobState_Name(state), "JOB_STATE_"));
}

}  // namespace gan::ganctl
