#ifndef GAN_CORE_ENGINE_H_
#define GAN_CORE_ENGINE_H_

// The process-wide oneDNN CPU engine. Engines are thread-safe; streams are not, so every network
// owns its own stream.

#include <string>

#include "oneapi/dnnl/dnnl.hpp"

namespace gan {

const dnnl::engine& CpuEngine();

// The oneDNN library the process runs, as benchmarks name it: "onednn-<major>.<minor>.<patch>".
std::string OneDnnName();

}  // namespace gan

#endif  // GAN_CORE_ENGINE_H_
