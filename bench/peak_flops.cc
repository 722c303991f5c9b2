// gan-peak-flops: the machine's attainable peak FLOP rate per training precision, measured with one
// large square oneDNN matmul (C = A * B, n x n x n, 2 * n^3 FLOPs) on the threads training uses:
// fp32 (f32 in and out) and bf16 (bf16 inputs, f32 output, as mixed-precision training multiplies).
// Weights take the layout oneDNN prefers (format any); the conversions are done before timing.
// The default n = 2048 keeps a run at a few seconds; on the 2-core Sapphire Rapids of
// docs/performance.md larger matrices are slower, not faster (n = 4096 reaches about two thirds of
// the bf16 rate of n = 2048).
// Each precision runs 3 warm-up multiplications, then timed ones for at least --seconds; the peak
// is the best repetition's rate (sharing the machine only lowers it), the median is printed too.
//
//   build/bin/gan-peak-flops --threads 2
//   build/bin/gan-peak-flops --threads 2 --json   # one JSON line (scripts/flop_fraction.py)
//
// bf16 is reported as not supported, with the reason, where training refuses it (no AVX512_BF16
// or AMX: gan::CheckPrecisionSupported; oneDNN would emulate it slowly there) or where its matmul
// has no implementation or only a reference one (`ref:`); the exit status stays 0.

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "core/engine.h"
#include "core/precision.h"
#include "nlohmann/json.hpp"
#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct Result {
  std::string precision;  // "fp32" or "bf16"
  bool supported = false;
  std::string reason;  // why not, when !supported
  std::string impl;    // oneDNN's impl_info_str()
  int64_t size = 0;    // M = N = K
  int repetitions = 0;
  double median_gflops = 0;
  double best_gflops = 0;
};

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) break;
      const size_t start = line.find_first_not_of(" \t", colon + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "unknown";
}

// Values in [-1, 1) from a fixed linear congruential sequence: no denormals, no special values.
void Fill(std::vector<float>* values, uint32_t seed) {
  uint32_t state = seed;
  for (float& v : *values) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

Result Measure(const dnnl::engine& engine, dnnl::stream& stream, const std::string& precision,
               int64_t n, double min_seconds) {
  Result result;
  result.precision = precision;
  result.size = n;
  const dt in_type = precision == "bf16" ? dt::bf16 : dt::f32;
  if (in_type == dt::bf16) {
    gan::v1::GanSpec spec;
    spec.set_precision(gan::v1::PRECISION_BF16);
    const absl::Status supported = gan::CheckPrecisionSupported(spec);
    if (!supported.ok()) {
      result.reason = std::string(supported.message());
      return result;
    }
  }
  const dnnl::memory::dims square = {n, n};
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(dnnl::memory::desc(square, in_type, tag::ab),
                           dnnl::memory::desc(square, in_type, tag::any),
                           dnnl::memory::desc(square, dt::f32, tag::ab)),
        engine);
  } catch (const dnnl::error& e) {
    result.reason = std::string("no oneDNN implementation of a ") + precision + " matmul (" +
                    e.what() + "; oneDNN max ISA " + gan::EffectiveCpuIsaName() + ")";
    return result;
  }
  result.impl = pd.impl_info_str();
  if (gan::IsReferenceImpl(result.impl)) {
    result.reason = "oneDNN would run a reference kernel (" + result.impl + "; oneDNN max ISA " +
                    gan::EffectiveCpuIsaName() + ")";
    return result;
  }
  result.supported = true;

  // Plain f32 inputs, converted by reorders into the matmul's types and layouts.
  const dnnl::memory::desc plain(square, dt::f32, tag::ab);
  std::vector<float> a(static_cast<size_t>(n * n)), b(static_cast<size_t>(n * n));
  Fill(&a, 1);
  Fill(&b, 2);
  dnnl::memory a_plain(plain, engine, a.data()), b_plain(plain, engine, b.data());
  dnnl::memory src(pd.src_desc(), engine), weights(pd.weights_desc(), engine),
      dst(pd.dst_desc(), engine);
  dnnl::reorder(a_plain, src).execute(stream, a_plain, src);
  dnnl::reorder(b_plain, weights).execute(stream, b_plain, weights);
  stream.wait();

  const dnnl::matmul matmul(pd);
  auto run = [&]() {
    matmul.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
    stream.wait();
  };
  for (int i = 0; i < 3; ++i) run();
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 5 || Seconds(start) < min_seconds) {
    const auto t = std::chrono::steady_clock::now();
    run();
    times.push_back(Seconds(t));
  }
  std::sort(times.begin(), times.end());
  const double flops = 2.0 * static_cast<double>(n) * n * n;
  result.repetitions = static_cast<int>(times.size());
  result.median_gflops = flops / times[times.size() / 2] / 1e9;
  result.best_gflops = flops / times.front() / 1e9;
  return result;
}

int Run(int threads, int64_t size_fp32, int64_t size_bf16, double seconds, bool json) {
  omp_set_num_threads(threads);
  const dnnl::engine& engine = gan::CpuEngine();
  dnnl::stream stream(engine);
  const std::vector<Result> results = {Measure(engine, stream, "fp32", size_fp32, seconds),
                                       Measure(engine, stream, "bf16", size_bf16, seconds)};
  const std::string onednn = gan::OneDnnName();
  const std::string cpu = CpuModel();
  const std::string isa = gan::EffectiveCpuIsaName();
  if (json) {
    nlohmann::json out = {{"engine", onednn}, {"cpu", cpu}, {"isa", isa}, {"threads", threads}};
    for (const Result& r : results) {
      nlohmann::json entry = {{"supported", r.supported}, {"size", r.size}};
      if (!r.impl.empty()) entry["impl"] = r.impl;
      if (r.supported) {
        entry["repetitions"] = r.repetitions;
        entry["peak_gflops"] = r.best_gflops;
        entry["median_gflops"] = r.median_gflops;
      } else {
        entry["reason"] = r.reason;
      }
      out[r.precision] = entry;
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("%s, %s, oneDNN max ISA %s, %d threads\n", cpu.c_str(), onednn.c_str(), isa.c_str(),
              threads);
  for (const Result& r : results) {
    if (r.supported) {
      std::printf(
          "%s: matmul %lldx%lldx%lld, %s: peak %.1f GFLOP/s (best of %d), median %.1f GFLOP/s\n",
          r.precision.c_str(), static_cast<long long>(r.size), static_cast<long long>(r.size),
          static_cast<long long>(r.size), r.impl.c_str(), r.best_gflops, r.repetitions,
          r.median_gflops);
    } else {
      std::printf("%s: not supported on this CPU: %s\n", r.precision.c_str(), r.reason.c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Attainable peak FLOP rate per precision, from a large square oneDNN matmul"};
  int threads = 2;
  int64_t size_fp32 = 2048, size_bf16 = 2048;
  double seconds = 2.0;
  bool json = false;
  app.add_option("--threads", threads, "OpenMP threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--size_fp32", size_fp32, "M = N = K of the fp32 matmul")
      ->capture_default_str()
      ->check(CLI::Range(64, 16384));
  app.add_option("--size_bf16", size_bf16, "M = N = K of the bf16 matmul")
      ->capture_default_str()
      ->check(CLI::Range(64, 16384));
  app.add_option("--seconds", seconds, "least timed seconds per precision, after 3 warm-ups")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  app.add_flag("--json", json, "print one JSON line");
  CLI11_PARSE(app, argc, argv);
  return Run(threads, size_fp32, size_bf16, seconds, json);
}
