// gan-train: trains a GAN locally with the code the server's jobs use.
//
//   build/bin/gan-train --preset seed --epochs 2 --out runs/seed
//   build/bin/gan-train --preset seed-dcgan --steps 200 --dataset synthetic --out /tmp/run
//
// Writes <out>/checkpoints/step-<N>.safetensors, <out>/metrics.jsonl (one JSON object per
// logged step) and <out>/samples.png (an 8x8 grid from the final generator). --resume continues
// from the newest intact checkpoint in <out> (a damaged newer one is set aside as
// step-<N>.safetensors.corrupt), with exactly the losses of an uninterrupted run. --init FILE
// starts from a checkpoint's (or a PyTorch state_dict's) weights; --pytorch_defaults trains with
// PyTorch's initialization, BatchNorm and Adam defaults instead of Keras'.
// --export_onnx DIR also writes DIR/generator.onnx and DIR/discriminator.onnx, the final networks
// as ONNX models (core/onnx_export.h).

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "core/dataset.h"
#include "core/framework_defaults.h"
#include "core/onnx_export.h"
#include "core/precision.h"
#include "core/presets.h"
#include "core/sampler.h"
#include "core/step_metrics_proto.h"
#include "core/training_defaults.h"
#include "core/training_run.h"
#include "google/protobuf/util/json_util.h"
#include "io/atomic_file.h"
#include "io/png.h"
#include "io/status_macros.h"
#include "proto/activation_names.h"

namespace {

struct Flags {
  std::string preset = "seed";
  int64_t steps = 0;
  int64_t epochs = 0;
  std::string dataset = gan::kDefaultDataset;
  uint64_t seed = 1;
  int64_t checkpoint_every = gan::kDefaultCheckpointEvery;
  int keep_checkpoints = gan::kDefaultKeepCheckpoints;
  bool background_checkpoints = gan::kDefaultBackgroundCheckpoints;
  int64_t log_every = 10;
  int batch = 0;
  int threads = gan::kDefaultTrainingThreads;
  std::string hidden_activation;
  std::string precision = "fp32";
  std::string out;
  std::string export_onnx;
  bool resume = false;
  std::string init;
  bool init_optimizer = false;
  bool pytorch_defaults = false;
};

absl::StatusOr<gan::ImageDataset> LoadDataset(const std::string& name) {
  if (gan::IsBuiltinDataset(name)) return gan::LoadBuiltinDataset(name);
  return gan::LoadIdxImageDirectory(name, std::filesystem::path(name).filename().string());
}

// One metrics.jsonl line: the API's StepMetrics in protobuf's JSON mapping with the .proto field
// names (images_per_second, gradient_norms; int64 fields are JSON strings, as the mapping says),
// so a line parses straight into gan.v1.StepMetrics.
absl::StatusOr<std::string> MetricsJsonLine(const gan::StepMetrics& m, int64_t epoch,
                                            double images_per_s) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string line;
  const auto status = google::protobuf::util::MessageToJsonString(
      gan::StepMetricsToProto(m, epoch, images_per_s), &line, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("metrics line: ", status.ToString()));
  }
  return line;
}

// Keeps the metrics of steps before `resume_step`, so every step appears exactly once.
absl::Status TruncateMetrics(const std::string& path, int64_t resume_step) {
  std::ifstream in(path);
  if (!in) return absl::OkStatus();
  std::string kept, line;
  while (std::getline(in, line)) {
    gan::v1::StepMetrics step;
    if (google::protobuf::util::JsonStringToMessage(line, &step).ok() &&
        step.step() < resume_step) {
      kept += line + "\n";
    }
  }
  return gan::WriteFileAtomically(path, kept);
}

// Writes <dir>/generator.onnx and <dir>/discriminator.onnx of the trainer's networks at `step`.
absl::Status ExportOnnxModels(gan::GanTrainer& trainer, int64_t step, uint64_t seed,
                              const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("--export_onnx: cannot create ", dir, ": ", error.message()));
  }
  gan::CheckpointInfo info;
  info.step = step;
  info.seed = seed;
  const gan::SafeTensors weights = gan::MakeCheckpoint(trainer, info);
  for (gan::OnnxNetwork network :
       {gan::OnnxNetwork::kGenerator, gan::OnnxNetwork::kDiscriminator}) {
    GAN_ASSIGN_OR_RETURN(onnx::ModelProto model, gan::ExportCheckpointToOnnx(weights, network));
    std::string bytes;
    if (!model.SerializeToString(&bytes)) {
      return absl::InternalError("--export_onnx: the ONNX model does not serialize");
    }
    const std::string path = absl::StrCat(dir, "/", gan::OnnxNetworkName(network), ".onnx");
    GAN_RETURN_IF_ERROR(gan::WriteFileAtomically(path, bytes));
    std::printf("onnx: %s\n", path.c_str());
  }
  return absl::OkStatus();
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "gan-train: %s\n", status.ToString().c_str());
  return 1;
}

int Train(const Flags& flags) {
  omp_set_num_threads(flags.threads);
  absl::StatusOr<gan::v1::GanSpec> spec = gan::PresetSpec(flags.preset);
  if (!spec.ok()) return Fail(spec.status());
  if (flags.batch > 0) spec->set_batch_size(flags.batch);
  if (!flags.hidden_activation.empty()) {
    auto activation = gan::ParseActivationName(flags.hidden_activation);
    if (!activation.ok()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--hidden_activation: ", activation.status().message())));
    }
    gan::SetHiddenActivations(*activation, spec->mutable_discriminator());
  }
  spec->set_precision(flags.precision == "bf16" ? gan::v1::PRECISION_BF16
                                                : gan::v1::PRECISION_FP32);
  if (flags.pytorch_defaults) gan::ApplyPyTorchDefaults(&*spec);
  // On a CPU without bf16 kernels: FAILED_PRECONDITION naming what is missing, before any work.
  if (absl::Status s = gan::CheckPrecisionSupported(*spec); !s.ok()) return Fail(s);
  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<gan::ImageDataset> dataset = LoadDataset(flags.dataset);
  if (!dataset.ok()) return Fail(dataset.status());

  gan::TrainingOptions options;
  options.spec = *spec;
  options.seed = flags.seed;
  options.checkpoint_every = flags.checkpoint_every;
  options.keep_checkpoints = flags.keep_checkpoints;
  options.background_checkpoints = flags.background_checkpoints;
  options.checkpoint_dir = flags.out + "/checkpoints";
  options.init_checkpoint = flags.init;
  options.init_optimizer = flags.init_optimizer;
  const int64_t batches_per_epoch = dataset->size() / spec->batch_size();
  options.total_steps = flags.steps > 0 ? flags.steps : flags.epochs * batches_per_epoch;
  auto run = gan::TrainingRun::Create(options, &*dataset);
  if (!run.ok()) return Fail(run.status());

  const std::string metrics_path = flags.out + "/metrics.jsonl";
  int64_t start_step = 0;
  if (flags.resume) {
    std::vector<gan::SetAsideCheckpoint> set_aside;
    auto resumed = (*run)->ResumeFromLatest(&set_aside);
    for (const gan::SetAsideCheckpoint& damaged : set_aside) {
      std::fprintf(stderr, "gan-train: damaged checkpoint set aside as %s: %s\n",
                   damaged.moved_to.c_str(), damaged.reason.ToString().c_str());
    }
    if (!resumed.ok()) return Fail(resumed.status());
    start_step = *resumed;
    if (auto s = TruncateMetrics(metrics_path, start_step); !s.ok()) return Fail(s);
    std::printf("resumed from step %lld\n", static_cast<long long>(start_step));
  } else if (!(*run)->CheckpointSteps().empty()) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        options.checkpoint_dir, " already holds checkpoints; pass --resume or another --out")));
  }
  std::ofstream metrics(metrics_path, flags.resume ? std::ios::app : std::ios::trunc);
  std::printf(
      "preset %s, dataset %s (%lld images), batch %d, %lld steps (%lld per epoch), "
      "seed %llu, %d threads\n",
      flags.preset.c_str(), dataset->name().c_str(), static_cast<long long>(dataset->size()),
      spec->batch_size(), static_cast<long long>(options.total_steps),
      static_cast<long long>(batches_per_epoch), static_cast<unsigned long long>(flags.seed),
      flags.threads);
  if (!flags.init.empty() && start_step == 0) {
    std::printf("weights%s from %s\n", flags.init_optimizer ? " and Adam states" : "",
                flags.init.c_str());
  }

  bool finite = true;
  double images_per_s_avg = 0;
  const auto train_start = std::chrono::steady_clock::now();
  gan::TrainingCallbacks callbacks;
  callbacks.on_step = [&](const gan::StepMetrics& m, int64_t epoch, double images_per_s) {
    finite = finite && std::isfinite(m.d_loss) && std::isfinite(m.g_loss);
    images_per_s_avg =
        images_per_s_avg == 0 ? images_per_s : 0.95 * images_per_s_avg + 0.05 * images_per_s;
    const int64_t done = m.step + 1;
    if (done % flags.log_every != 0 && done != options.total_steps) return;
    absl::StatusOr<std::string> line = MetricsJsonLine(m, epoch, images_per_s);
    if (!line.ok()) {
      std::fprintf(stderr, "gan-train: %s\n", line.status().ToString().c_str());
      return;
    }
    metrics << *line << "\n";
    metrics.flush();
    std::printf(
        "step %6lld/%lld  epoch %lld  d_loss %.4f  g_loss %.4f  D(x) %.3f  D(G(z)) %.3f  "
        "acc %.3f  %.0f img/s\n",
        static_cast<long long>(done), static_cast<long long>(options.total_steps),
        static_cast<long long>(epoch), m.d_loss, m.g_loss, m.d_real, m.d_fake, m.d_accuracy,
        images_per_s_avg);
    std::fflush(stdout);
  };
  callbacks.on_checkpoint = [](int64_t step, const std::string& path) {
    std::printf("checkpoint %s\n", path.c_str());
  };
  if (auto s = (*run)->Run(callbacks); !s.ok()) return Fail(s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();

  gan::GanTrainer& trainer = (*run)->trainer();
  auto sampler =
      gan::Sampler::Create(trainer.shapes().generator, &trainer.generator(), spec->noise());
  if (!sampler.ok()) return Fail(sampler.status());
  const gan::v1::ImageShape& image = spec->image_shape();
  constexpr int kSamples = 64;
  std::vector<float> images(kSamples * (*sampler)->image_floats());
  if (auto s = (*sampler)->Generate(kSamples, flags.seed, absl::MakeSpan(images)); !s.ok()) {
    return Fail(s);
  }
  const std::vector<uint8_t> pixels =
      gan::ToPixelsNhwc(images, kSamples, image.channels(), image.height(), image.width());
  const std::string png = flags.out + "/samples.png";
  if (auto s = gan::WritePngGrid(png, pixels, kSamples, image.height(), image.width(),
                                 image.channels(), 8);
      !s.ok()) {
    return Fail(s);
  }
  if (!flags.export_onnx.empty()) {
    absl::Status s = ExportOnnxModels(trainer, (*run)->step(), flags.seed, flags.export_onnx);
    if (!s.ok()) return Fail(s);
  }
  std::printf("trained steps %lld..%lld in %.1f s (data loaded in %.1f s); losses %s\n",
              static_cast<long long>(start_step), static_cast<long long>(options.total_steps),
              seconds, std::chrono::duration<double>(train_start - load_start).count(),
              finite ? "finite throughout" : "NOT FINITE at some step");
  std::printf("samples: %s\nmetrics: %s\n", png.c_str(), metrics_path.c_str());
  return finite ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Train a GAN locally (the same engine the gan-server jobs use)"};
  app.add_option("--preset", flags.preset, "seed, seed-dcgan or tf-dcgan")->capture_default_str();
  auto* steps = app.add_option("--steps", flags.steps, "iterations to train")
                    ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  auto* epochs = app.add_option("--epochs", flags.epochs, "epochs to train")
                     ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  steps->excludes(epochs);
  app.add_option("--dataset", flags.dataset,
                 "fashion-mnist, synthetic, or a directory holding train-images-idx3-ubyte[.gz]")
      ->capture_default_str();
  app.add_option("--seed", flags.seed, "seed of initialization, noise, dropout and data order")
      ->capture_default_str();
  app.add_option("--checkpoint_every", flags.checkpoint_every,
                 "steps between checkpoints (0: only the final one)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--keep_checkpoints", flags.keep_checkpoints, "newest checkpoints kept (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--background_checkpoints", flags.background_checkpoints,
                 "write periodic checkpoints from a snapshot on a background thread (false: on "
                 "the training thread, without the snapshot's memory)")
      ->capture_default_str();
  app.add_option("--log_every", flags.log_every, "steps between progress lines / metrics")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--batch", flags.batch, "batch size (default: the preset's)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--threads", flags.threads, "OpenMP threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--hidden_activation", flags.hidden_activation,
                 "replace the discriminator's hidden activations: leaky_relu, relu, tanh, sigmoid");
  app.add_option("--precision", flags.precision,
                 "fp32, or bf16 (mixed precision; needs AVX512_BF16 or AMX)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--out", flags.out, "output directory")->required();
  app.add_option("--export_onnx", flags.export_onnx,
                 "also write DIR/generator.onnx and DIR/discriminator.onnx (ONNX models of the "
                 "final networks)");
  app.add_flag("--resume", flags.resume, "continue from the newest checkpoint in --out");
  auto* init = app.add_option("--init", flags.init,
                              "start from these weights instead of a fresh initialization: a "
                              "checkpoint, or a safetensors file written from PyTorch with the "
                              "checkpoint names and layouts (--resume with a checkpoint wins)")
                   ->check(CLI::ExistingFile);
  app.add_flag("--init_optimizer", flags.init_optimizer,
               "also take the Adam states of the --init checkpoint")
      ->needs(init);
  app.add_flag("--pytorch_defaults", flags.pytorch_defaults,
               "PyTorch's recipe instead of Keras': default init of Linear/Conv2d/ConvTranspose2d, "
               "BatchNorm eps 1e-5 momentum 0.1, Adam eps 1e-8");
  CLI11_PARSE(app, argc, argv);
  if (flags.steps == 0 && flags.epochs == 0) {
    std::fprintf(stderr, "gan-train: give --steps N or --epochs E\n");
    return 2;
  }
  std::error_code error;
  std::filesystem::create_directories(flags.out, error);
  if (error) {
    std::fprintf(stderr, "gan-train: cannot create %s: %s\n", flags.out.c_str(),
                 error.message().c_str());
    return 1;
  }
  return Train(flags);
}
