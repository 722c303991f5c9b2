#ifndef GAN_IO_LITTLE_ENDIAN_H_
#define GAN_IO_LITTLE_ENDIAN_H_

// float32 values in little-endian byte order, as the wire formats (gan.v1 float pixels, the
// inference protocol's raw contents) carry them, whatever the host's order.

#include <cstdint>
#include <cstring>

namespace gan {

inline float LoadFloatLittleEndian(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  const uint32_t bits =
      uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline void StoreFloatLittleEndian(float value, char* p) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
}

}  // namespace gan

#endif  // GAN_IO_LITTLE_ENDIAN_H_
