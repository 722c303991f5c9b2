#include "core/sequential.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/engine.h"
#include "core/status_macros.h"

namespace gan {

Sequential::Sequential(std::vector<LayerShape> layers, const NetworkOptions& options)
    : layers_(std::move(layers)), options_(options), stream_(CpuEngine()) {}

absl::Span<float> Sequential::Buffer(const dnnl::memory& m) {
  if (!m) return {};
  return absl::MakeSpan(static_cast<float*>(m.get_data_handle()),
                        m.get_desc().get_size() / sizeof(float));
}

absl::StatusOr<std::unique_ptr<Sequential>> Sequential::Create(std::vector<LayerShape> layers,
                                                               ParameterStore* store,
                                                               const NetworkOptions& options) {
  if (layers.empty()) return absl::InvalidArgumentError("a network needs at least one layer");
  if (options.batch < 1) return absl::InvalidArgumentError("batch must be >= 1");
  std::unique_ptr<Sequential> net(new Sequential(std::move(layers), options));
  const dnnl::engine& engine = CpuEngine();
  const int64_t batch = options.batch;
  const bool training = options.pass == Pass::kTraining;
  const size_t n = net->layers_.size();
  try {
    // Activations: views alias their input's buffer under their output's shape.
    net->activations_.push_back(dnnl::memory(PlainDesc(net->layers_[0].input, batch), engine));
    for (const LayerShape& layer : net->layers_) {
      const dnnl::memory::desc md = PlainDesc(layer.output, batch);
      net->activations_.push_back(IsView(layer.spec, options.pass)
                                      ? dnnl::memory(md, engine,
                                                     net->activations_.back().get_data_handle())
                                      : dnnl::memory(md, engine));
    }
    net->gradients_.resize(n + 1);
    if (training) {
      net->gradients_[n] = dnnl::memory(PlainDesc(net->layers_[n - 1].output, batch), engine);
      for (size_t i = n; i-- > 0;) {
        if (i == 0 && !options.input_grad) break;
        const dnnl::memory::desc md = PlainDesc(net->layers_[i].input, batch);
        net->gradients_[i] =
            IsView(net->layers_[i].spec, options.pass)
                ? dnnl::memory(md, engine, net->gradients_[i + 1].get_data_handle())
                : dnnl::memory(md, engine);
      }
    }
  } catch (const dnnl::error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("could not allocate the network's buffers: ", e.what()));
  }
  net->modules_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (IsView(net->layers_[i].spec, options.pass)) continue;
    LayerBinding binding{&net->layers_[i],      batch, options.pass, engine,
                         net->activations_[i],  net->activations_[i + 1],
                         net->gradients_[i],    net->gradients_[i + 1], store};
    GAN_ASSIGN_OR_RETURN(net->modules_[i], CreateLayer(binding));
    if (auto* dropout = dynamic_cast<Dropout*>(net->modules_[i].get())) {
      net->dropouts_.push_back(dropout);
    }
  }
  return net;
}

void Sequential::Forward() {
  for (auto& module : modules_) {
    if (module) module->Forward(stream_);
  }
  stream_.wait();
}

void Sequential::Backward(bool param_grads) {
  for (size_t i = modules_.size(); i-- > 0;) {
    if (modules_[i]) modules_[i]->Backward(stream_, param_grads);
  }
  stream_.wait();
}

}  // namespace gan
