#include "core/random.h"

#include <cmath>

namespace gan {

float NormalAt(uint64_t key, uint64_t index) {
  // 1 - u keeps the logarithm's argument in (0, 1].
  const double u1 = 1.0 - static_cast<double>(UniformAt(key, 2 * index));
  const double u2 = static_cast<double>(UniformAt(key, 2 * index + 1));
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2));
}

}  // namespace gan
