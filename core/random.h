#ifndef GAN_CORE_RANDOM_H_
#define GAN_CORE_RANDOM_H_

// Counter-based random numbers: every value is a pure function of (key, index), so noise, dropout
// masks and shuffles depend only on the seed and the step, never on thread count or call history.
// That makes training deterministic and resume exact without saving generator state beyond the
// seed and the step. scripts/make_reference_data.py implements the same functions in numpy.

#include <cstdint>

namespace gan {

// SplitMix64 finalizer (Steele, Lea, Flood 2014).
inline uint64_t SplitMix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Combines a key with a stream tag, so different purposes of one seed never share values.
inline uint64_t MixKey(uint64_t key, uint64_t tag) {
  return SplitMix64(key ^ SplitMix64(tag));
}

// Uniform in [0, 1) with 24 random bits (exact in float).
inline float UniformAt(uint64_t key, uint64_t index) {
  return static_cast<float>(SplitMix64((key << 32) + index) >> 40) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller from two uniforms at indices 2i and 2i+1.
float NormalAt(uint64_t key, uint64_t index);

}  // namespace gan

#endif  // GAN_CORE_RANDOM_H_
