#include "core/sequential.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/engine.h"
#include "io/status_macros.h"

namespace gan {
namespace {

constexpr int kNone = -1;

// Assigns buffers to a chain of tensors t_0 .. t_n where t_{k+1} either shares t_k's buffer
// (`alias[k]`) or needs its own. With `reuse`, only two buffers alternate (a tensor is dead once
// the next one has been computed); otherwise every tensor gets a buffer of its own.
std::vector<int> AssignBuffers(const std::vector<bool>& alias, int first, bool reuse,
                               int* next_id) {
  std::vector<int> ids(alias.size() + 1, kNone);
  ids[0] = first;
  const int a = (*next_id)++;
  const int b = reuse ? (*next_id)++ : kNone;
  for (size_t k = 0; k < alias.size(); ++k) {
    if (alias[k]) {
      ids[k + 1] = ids[k];
    } else if (reuse) {
      ids[k + 1] = ids[k] == a ? b : a;
    } else {
      ids[k + 1] = k == 0 ? a : (*next_id)++;
    }
  }
  return ids;
}

}  // namespace

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
  try {
    GAN_RETURN_IF_ERROR(net->Plan(store));
  } catch (const dnnl::error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("could not lay out the network's buffers: ", e.what()));
  }
  return net;
}

absl::Status Sequential::Plan(ParameterStore* store) {
  const dnnl::engine& engine = CpuEngine();
  const int64_t batch = options_.batch;
  const bool training = options_.pass == Pass::kTraining;
  const size_t n = layers_.size();
  if (options_.compute != dnnl::memory::data_type::f32) {
    weight_copies_ = options_.weight_copies;
    if (weight_copies_ == nullptr) {
      own_weight_copies_ = std::make_unique<WeightCopies>(store, engine);
      weight_copies_ = own_weight_copies_.get();
    }
  }

  // 1. Layouts: walk forward; each layer decides its output layout from its input's.
  std::vector<dnnl::memory::desc> descs = {PlainDesc(layers_[0].input, batch)};
  std::vector<bool> view(n), in_place(n), needs_grad(n + 1, false);
  modules_.resize(n);
  needs_grad[0] = training && options_.input_grad;
  int producer = kNone;  // last non-view entry: whose buffer an in-place layer would overwrite
  for (size_t i = 0; i < n; ++i) {
    const LayerShape& layer = layers_[i];
    const bool plain_input = descs[i] == PlainDesc(layer.input, batch);
    view[i] = IsView(layer.spec, options_.pass, descs[i], plain_input, options_.compute);
    if (view[i]) {
      descs.push_back(layer.spec.has_flatten() || layer.spec.has_reshape()
                          ? PlainDesc(layer.output, batch)
                          : descs[i]);
    } else {
      LayerContext context{&layer, batch, options_.pass, engine, descs[i], needs_grad[i], store};
      context.compute = options_.compute;
      context.weight_copies = weight_copies_;
      GAN_ASSIGN_OR_RETURN(modules_[i], CreateLayer(context));
      descs.push_back(modules_[i]->dst_desc());
      in_place[i] = modules_[i]->can_run_in_place() && producer != kNone &&
                    !modules_[producer]->backward_reads_dst();
      producer = static_cast<int>(i);
      if (auto* dropout = dynamic_cast<Dropout*>(modules_[i].get())) dropouts_.push_back(dropout);
    }
    needs_grad[i + 1] = training && (needs_grad[i] || !layer.params.empty());
  }

  // 2. Buffers. Activations: all kept for backward in training, two alternating at inference.
  std::vector<bool> alias(n);
  for (size_t i = 0; i < n; ++i) alias[i] = view[i] || in_place[i];
  int next_id = 1;  // 0 is the input
  const std::vector<int> act_ids = AssignBuffers(alias, 0, !training, &next_id);
  std::vector<int> grad_ids(n + 1, kNone);
  if (training) {
    // Gradients run from the output down; reverse the chain, plan it, reverse back.
    std::vector<bool> reversed(alias.rbegin(), alias.rend());
    std::vector<int> ids = AssignBuffers(reversed, next_id++, true, &next_id);
    std::reverse(ids.begin(), ids.end());
    for (size_t k = 0; k <= n; ++k) {
      if (needs_grad[k] || k == n) grad_ids[k] = ids[k];
    }
  }
  std::vector<size_t> sizes(next_id, 0);
  for (size_t k = 0; k <= n; ++k) {
    sizes[act_ids[k]] = std::max(sizes[act_ids[k]], descs[k].get_size());
    if (grad_ids[k] != kNone) {
      sizes[grad_ids[k]] = std::max(sizes[grad_ids[k]], descs[k].get_size());
    }
  }
  std::vector<dnnl::memory>* shared = options_.shared_buffers;
  for (size_t k = 0; k < sizes.size(); ++k) {
    const size_t bytes = sizes[k];
    if (shared != nullptr && k < shared->size() && (*shared)[k] &&
        (*shared)[k].get_desc().get_size() >= bytes) {
      buffers_.push_back((*shared)[k]);
      continue;
    }
    const dnnl::memory::dim floats = static_cast<dnnl::memory::dim>((bytes + 3) / 4);
    buffers_.push_back(bytes == 0 ? dnnl::memory()
                                  : dnnl::memory({{floats}, dnnl::memory::data_type::f32,
                                                  dnnl::memory::format_tag::a},
                                                 engine));
    buffer_bytes_ += static_cast<int64_t>(bytes);
    if (shared != nullptr && k >= shared->size()) shared->push_back(buffers_.back());
  }
  auto at = [&](int id, const dnnl::memory::desc& md) {
    return id == kNone ? dnnl::memory() : dnnl::memory(md, engine, buffers_[id].get_data_handle());
  };
  std::vector<dnnl::memory> acts, grads;
  for (size_t k = 0; k <= n; ++k) {
    acts.push_back(at(act_ids[k], descs[k]));
    grads.push_back(at(grad_ids[k], descs[k]));
  }
  for (size_t i = 0; i < n; ++i) {
    if (modules_[i]) modules_[i]->Bind({acts[i], acts[i + 1], grads[i], grads[i + 1]});
  }

  // 3. Plain boundaries.
  input_ = acts[0];
  input_grad_ = grads[0];
  last_activation_ = acts[n];
  last_gradient_ = grads[n];
  const dnnl::memory::desc plain_output = PlainDesc(layers_[n - 1].output, batch);
  if (descs[n] == plain_output) {
    output_ = acts[n];
    output_grad_ = grads[n];
  } else {
    output_ = dnnl::memory(plain_output, engine);
    output_reorder_ = dnnl::reorder(last_activation_, output_);
    buffer_bytes_ += static_cast<int64_t>(plain_output.get_size());
    if (training) {
      output_grad_ = dnnl::memory(plain_output, engine);
      output_grad_reorder_ = dnnl::reorder(output_grad_, last_gradient_);
      buffer_bytes_ += static_cast<int64_t>(plain_output.get_size());
    }
  }
  return absl::OkStatus();
}

std::vector<PrimitiveInfo> Sequential::primitives() const {
  std::vector<PrimitiveInfo> out;
  for (const auto& module : modules_) {
    if (module) module->AppendPrimitives(&out);
  }
  return out;
}

void Sequential::Forward() {
  if (weight_copies_ != nullptr) weight_copies_->Refresh(stream_);
  for (auto& module : modules_) {
    if (module) module->Forward(stream_);
  }
  if (output_reorder_) output_reorder_.execute(stream_, last_activation_, output_);
  stream_.wait();
}

void Sequential::Backward(bool param_grads) {
  if (weight_copies_ != nullptr) weight_copies_->Refresh(stream_);
  if (output_grad_reorder_) output_grad_reorder_.execute(stream_, output_grad_, last_gradient_);
  for (size_t i = modules_.size(); i-- > 0;) {
    if (modules_[i]) modules_[i]->Backward(stream_, param_grads);
  }
  stream_.wait();
}

}  // namespace gan
