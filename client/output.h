#ifndef GAN_CLIENT_OUTPUT_H_
#define GAN_CLIENT_OUTPUT_H_

// ganctl's exit codes and the printing every command shares: results on stdout, errors on stderr
// as one line "ganctl: ...".

#include <string>

#include "absl/strings/string_view.h"
#include "gan/v1/service.pb.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/status.h"

namespace gan::ganctl {

// Exit codes, as README.md documents them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;  // the server answered with an error or was unreachable
inline constexpr int kExitUsage = 2;     // bad command line
inline constexpr int kExitJobNotSucceeded = 3;  // the watched job ended other than SUCCEEDED
inline constexpr int kExitFileError = 4;        // an input or output file could not be used

// The canonical name of `code`, e.g. "NOT_FOUND"; "UNKNOWN" for a value outside the enum.
const char* StatusCodeName(grpc::StatusCode code);

// Prints "ganctl: CODE: message" on stderr and returns kExitRpcError.
int ReportRpcError(const grpc::Status& status);

// Prints "ganctl: <message>" on stderr.
void ReportError(absl::string_view message);

// Prints `message` on stdout: with `json`, protobuf JSON with the .proto field names on one line;
// otherwise protobuf text format.
void PrintMessage(bool json, const google::protobuf::Message& message);

// The state without its enum prefix, e.g. "RUNNING" for JOB_STATE_RUNNING.
std::string JobStateName(gan::v1::JobState state);

}  // namespace gan::ganctl

#endif  // GAN_CLIENT_OUTPUT_H_
