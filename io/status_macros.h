#ifndef GAN_IO_STATUS_MACROS_H_
#define GAN_IO_STATUS_MACROS_H_

// Early-return helpers for absl::Status / absl::StatusOr (Abseil 20220623 ships none).

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GAN_STATUS_CONCAT_INNER_(a, b) a##b
#define GAN_STATUS_CONCAT_(a, b) GAN_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the caller when it is not OK.
#define GAN_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::absl::Status gan_status_ = (expr);           \
    if (!gan_status_.ok()) return gan_status_;     \
  } while (false)

// `GAN_ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns `x` from an absl::StatusOr or returns
// its error status from the caller.
#define GAN_ASSIGN_OR_RETURN(lhs, expr) \
  GAN_ASSIGN_OR_RETURN_IMPL_(GAN_STATUS_CONCAT_(gan_statusor_, __LINE__), lhs, expr)

#define GAN_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // GAN_IO_STATUS_MACROS_H_
