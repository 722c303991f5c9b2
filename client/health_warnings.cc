#include "client/health_warnings.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gan::ganctl {
namespace {

// "LAYER_HEALTH_VANISHING" -> "vanishing"
std::string StateName(const std::string& enum_name, size_t prefix_length) {
  return absl::AsciiStrToLower(enum_name.substr(prefix_length));
}

}  // namespace

std::vector<std::string> HealthWarnings::Update(const gan::v1::StepMetrics& step) {
  std::vector<std::string> lines;
  const std::string at = absl::StrCat("step ", step.step() + 1, ": ");
  for (const gan::v1::LayerGradientNorm& g : step.gradient_norms()) {
    if (g.health() == gan::v1::LAYER_HEALTH_UNSPECIFIED) continue;
    auto [it, inserted] = layers_.emplace(g.layer(), gan::v1::LAYER_HEALTH_OK);
    if (it->second == g.health()) continue;
    it->second = g.health();
    const std::string ratio = absl::StrFormat("|grad|/|w| %.3g", g.relative_norm());
    if (g.health() == gan::v1::LAYER_HEALTH_OK) {
      lines.push_back(absl::StrCat(at, g.layer(), " gradient ok again (", ratio, ")"));
    } else {
      lines.push_back(absl::StrCat(
          "warning: ", at, g.layer(), " gradient ",
          StateName(gan::v1::LayerHealth_Name(g.health()), sizeof("LAYER_HEALTH_") - 1), " (",
          ratio, ")"));
    }
  }
  const gan::v1::DiscriminatorHealth d = step.discriminator_health();
  if (d != gan::v1::DISCRIMINATOR_HEALTH_UNSPECIFIED && d != discriminator_) {
    discriminator_ = d;
    const std::string figures = absl::StrFormat("D(x) %.3f, D(G(z)) %.3f, accuracy %.3f",
                                                step.d_real(), step.d_fake(), step.d_accuracy());
    if (d == gan::v1::DISCRIMINATOR_HEALTH_OK) {
      lines.push_back(absl::StrCat(at, "discriminator ok again (", figures, ")"));
    } else {
      lines.push_back(absl::StrCat(
          "warning: ", at, "discriminator ",
          StateName(gan::v1::DiscriminatorHealth_Name(d), sizeof("DISCRIMINATOR_HEALTH_") - 1),
          " (", figures, ")"));
    }
  }
  return lines;
}

}  // namespace gan::ganctl
