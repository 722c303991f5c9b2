#ifndef GAN_SERVER_JOB_STATE_H_
#define GAN_SERVER_JOB_STATE_H_

// The one home of job-state predicates.

#include "gan/v1/service.pb.h"

namespace gan::server {

// SUCCEEDED, FAILED and CANCELLED: the job will never run again and its record no longer changes.
inline bool IsTerminal(gan::v1::JobState state) {
  return state == gan::v1::JOB_STATE_SUCCEEDED || state == gan::v1::JOB_STATE_FAILED ||
         state == gan::v1::JOB_STATE_CANCELLED;
}

}  // namespace gan::server

#endif  // GAN_SERVER_JOB_STATE_H_
