// gan-bench: training and scoring throughput of a preset on synthetic data, with the code the
// service uses. Mirrors its PyTorch peer bench/torch_peer.py: 3 warm-up iterations, then N timed
// ones; scoring runs the discriminator (sigmoid included) at --score_batch for about 2 seconds.
//
//   build/bin/gan-bench --preset seed --batch 64 --threads 2 --steps 30 --json
//   build/bin/gan-bench --preset seed --precision bf16 --json   # mixed precision (AVX512_BF16/AMX)
//
// --precision bf16 trains with GanSpec.precision PRECISION_BF16 (scoring stays fp32); on a CPU
// without bf16 kernels it prints the FAILED_PRECONDITION and exits with 1. --primitives prints
// the oneDNN implementation of every training convolution and matmul on stderr.

#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "core/dataset.h"
#include "core/engine.h"
#include "core/gan_trainer.h"
#include "core/init.h"
#include "core/precision.h"
#include "core/presets.h"
#include "core/scorer.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Run(const std::string& preset, int batch, int threads, int steps, int score_batch,
        int score_chunk, const std::string& precision, bool primitives, bool json) {
  omp_set_num_threads(threads);
  auto spec = gan::PresetSpec(preset);
  if (!spec.ok()) {
    std::fprintf(stderr, "gan-bench: %s\n", spec.status().ToString().c_str());
    return 2;
  }
  spec->set_batch_size(batch);
  spec->set_precision(precision == "bf16" ? gan::v1::PRECISION_BF16 : gan::v1::PRECISION_FP32);
  auto trainer = gan::GanTrainer::Create(*spec);
  if (!trainer.ok()) {
    std::fprintf(stderr, "gan-bench: %s\n", trainer.status().ToString().c_str());
    // A CPU that cannot run the precision is not a usage error.
    return trainer.status().code() == absl::StatusCode::kFailedPrecondition ? 1 : 2;
  }
  if (primitives) {
    std::fprintf(stderr, "oneDNN max ISA %s\n", gan::EffectiveCpuIsaName().c_str());
    for (gan::Role role : {gan::Role::kGenerator, gan::Role::kDiscriminator}) {
      for (const gan::PrimitiveInfo& p : (*trainer)->primitives(role)) {
        std::fprintf(stderr, "%s layer %d %s: %s (%s)\n",
                     role == gan::Role::kGenerator ? "generator" : "discriminator", p.layer,
                     p.primitive.c_str(), p.impl.c_str(),
                     p.compute == dnnl::memory::data_type::bf16 ? "bf16" : "f32");
      }
    }
  }
  gan::InitializeGlorotUniform(1, &(*trainer)->generator());
  gan::InitializeGlorotUniform(2, &(*trainer)->discriminator());
  const gan::ImageDataset data = gan::MakeSyntheticDataset(std::max(batch, 1024), 1);
  std::vector<int64_t> indices(batch);
  for (int i = 0; i < batch; ++i) indices[i] = i;
  std::vector<float> real((*trainer)->real_batch_size());
  data.FillBatch(indices, real.data());

  const auto distribution = spec->noise().distribution();
  auto step = [&]() {
    gan::SeededRandomness randomness(1, (*trainer)->step(), distribution);
    return (*trainer)->Step(real, randomness);
  };
  for (int i = 0; i < 3; ++i) step();
  auto start = std::chrono::steady_clock::now();
  gan::StepMetrics last;
  for (int i = 0; i < steps; ++i) last = step();
  const double train_ips = steps * static_cast<double>(batch) / Seconds(start);

  gan::Scorer scorer((*trainer)->shapes().discriminator, &(*trainer)->discriminator(), score_chunk);
  std::vector<float> images(static_cast<size_t>(score_batch) * 28 * 28, 0.5f);
  std::vector<float> logits(score_batch), probabilities(score_batch);
  for (int i = 0; i < 3; ++i)
    (void)scorer.Score(images, score_batch, absl::MakeSpan(logits), absl::MakeSpan(probabilities));
  int64_t scored = 0;
  start = std::chrono::steady_clock::now();
  while (Seconds(start) < 2.0) {
    (void)scorer.Score(images, score_batch, absl::MakeSpan(logits), absl::MakeSpan(probabilities));
    scored += score_batch;
  }
  const double score_ips = scored / Seconds(start);

  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  const long long peak_rss = static_cast<long long>(usage.ru_maxrss) * 1024;
  if (json) {
    std::printf(
        "{\"engine\": \"%s\", \"preset\": \"%s\", \"precision\": \"%s\", "
        "\"threads\": %d, \"batch\": %d, "
        "\"steps\": %d, \"train_images_per_s\": %.1f, \"score_batch\": %d, "
        "\"score_chunk\": %d, \"score_images_per_s\": %.1f, \"peak_rss_bytes\": %lld, "
        "\"last_d_loss\": %.4f, "
        "\"last_g_loss\": %.4f}\n",
        gan::OneDnnName().c_str(), preset.c_str(), precision.c_str(), threads, batch, steps,
        train_ips, score_batch, score_chunk, score_ips, peak_rss, last.d_loss, last.g_loss);
  } else {
    std::printf(
        "preset %s, %s, batch %d, %d threads: training %.1f images/s, scoring %.1f "
        "images/s (batch %d), peak RSS %.1f MB\n",
        preset.c_str(), precision.c_str(), batch, threads, train_ips, score_ips, score_batch,
        peak_rss / 1e6);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Training and scoring throughput of a GAN preset on synthetic data"};
  std::string preset = "seed";
  int batch = 64, threads = 2, steps = 30, score_batch = 256, score_chunk = 64;
  bool json = false, primitives = false;
  std::string precision = "fp32";
  app.add_option("--preset", preset, "seed, seed-dcgan or tf-dcgan")->capture_default_str();
  app.add_option("--batch", batch, "training batch size")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--threads", threads, "OpenMP threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--steps", steps, "timed iterations after 3 warm-up ones")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--score_batch", score_batch, "discriminator inference batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--score_chunk", score_chunk,
                 "images per inference pass inside a scoring request (the server's chunk)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--precision", precision,
                 "training arithmetic: fp32, or bf16 (mixed precision; needs AVX512_BF16 or AMX)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_flag("--primitives", primitives,
               "print the oneDNN implementation of every training convolution and matmul");
  app.add_flag("--json", json, "print one JSON line");
  CLI11_PARSE(app, argc, argv);
  return Run(preset, batch, threads, steps, score_batch, score_chunk, precision, primitives, json);
}
