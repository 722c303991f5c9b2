#include "tests/fuzz/fuzz_util.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"

namespace gan::fuzz {

MemoryFile::MemoryFile(const uint8_t* data, size_t size) {
  fd_ = memfd_create("fuzz-input", MFD_CLOEXEC);
  if (fd_ < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd_, data + written, size - written);
    if (n <= 0) {
      std::perror("write to memfd");
      std::abort();
    }
    written += static_cast<size_t>(n);
  }
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

MemoryFile::~MemoryFile() { close(fd_); }

bool SilenceProtobufLogs() {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}

gan::v1::GanSpec TinyGanSpec() {
  static constexpr char kText[] = R"pb(
    generator {
      layers { dense { units: 16 } }
      layers { batch_norm {} }
      layers { reshape { channels: 1 height: 4 width: 4 } }
      layers { activation { function: ACTIVATION_FUNCTION_TANH } }
    }
    discriminator {
      layers { conv2d { filters: 1 kernel_size: 2 stride: 2 padding: PADDING_SAME } }
      layers { activation { function: ACTIVATION_FUNCTION_LEAKY_RELU alpha: 0.2 } }
      layers { flatten {} }
      layers { dense { units: 1 } }
      layers { activation { function: ACTIVATION_FUNCTION_SIGMOID } }
    }
    generator_optimizer { learning_rate: 0.001 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
    discriminator_optimizer { learning_rate: 0.001 beta1: 0.5 beta2: 0.999 epsilon: 1e-7 }
    noise { distribution: NOISE_DISTRIBUTION_NORMAL dim: 4 }
    image_shape { height: 4 width: 4 channels: 1 }
    batch_size: 2
  )pb";
  gan::v1::GanSpec spec;
  if (!google::protobuf::TextFormat::ParseFromString(kText, &spec)) {
    std::fprintf(stderr, "TinyGanSpec does not parse\n");
    std::abort();
  }
  return spec;
}

}  // namespace gan::fuzz
