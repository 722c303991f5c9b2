#ifndef GAN_CLIENT_HEALTH_WARNINGS_H_
#define GAN_CLIENT_HEALTH_WARNINGS_H_

// The lines `ganctl watch` prints when a gradient-health flag of the metric events changes: one
// when a layer turns VANISHING or EXPLODING or the discriminator STALLED or COLLAPSED, one when it
// turns OK again; nothing while a flag stays as it was.

#include <map>
#include <string>
#include <vector>

#include "gan/v1/service.pb.h"

namespace gan::ganctl {

class HealthWarnings {
 public:
  // The lines for the flags of `step` that differ from the previous event's (the first event is
  // compared with all OK). Flags an event leaves UNSPECIFIED (not assessed) change nothing.
  std::vector<std::string> Update(const gan::v1::StepMetrics& step);

 private:
  std::map<std::string, gan::v1::LayerHealth> layers_;
  gan::v1::DiscriminatorHealth discriminator_ = gan::v1::DISCRIMINATOR_HEALTH_OK;
};

}  // namespace gan::ganctl

#endif  // GAN_CLIENT_HEALTH_WARNINGS_H_
