// The GPT stack: MLP, TransformerBlock, GPTEmbedding, LMHead, make_gpt with GPT-2's init, and
// the training helpers (weight-decay groups, loss, FLOPs per token, sampling).
#include "nn/transformer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

namespace minipipe::nn {

void GPTConfig::validate() const {
  MP_CHECK(vocab_size > 0, "GPT: vocab_size must be positive, got ", vocab_size);
  MP_CHECK(context > 0, "GPT: context must be positive, got ", context);
  MP_CHECK(n_layer > 0, "GPT: layers must be positive, got ", n_layer);
  MP_CHECK(d_model > 0 && n_head > 0, "GPT: d_model and heads must be positive, got d_model=", d_model,
           " heads=", n_head);
  MP_CHECK(d_model % n_head == 0, "GPT: heads=", n_head, " does not divide d_model=", d_model,
           " (each head gets d_model / heads channels)");
  MP_CHECK(dropout >= 0 && dropout < 1, "GPT: dropout must be in [0, 1), got ", dropout);
  MP_CHECK(is_floating(dtype), "GPT: dtype must be floating point, got ", dtype_name(dtype));
}

std::string GPTConfig::str() const {
  std::ostringstream os;
  os << "layers=" << n_layer << " d_model=" << d_model << " heads=" << n_head << " context=" << context
     << " vocab=" << vocab_size << " dropout=" << dropout << " tie_weights=" << (tie_weights ? "on" : "off");
  return os.str();
}

// ---- MLP ----

MLP::MLP(int64_t c, double dropout, DType dtype, bool init) : Module("MLP"), dropout_p_(dropout) {
  fc = register_module("fc", std::make_shared<Linear>(LinearOptions(c, 4 * c).dtype(dtype).init(init)));
  proj = register_module("proj", std::make_shared<Linear>(LinearOptions(4 * c, c).dtype(dtype).init(init)));
}

// x: [B, T, C] -> h = gelu(x W_fc^T + b): [B, T, 4C] -> [B, T, C]
Tensor MLP::forward(const Tensor& x) {
  return dropout(proj->forward(gelu(fc->forward(x))), dropout_p_, is_training(), random_source("out"));
}

// ---- TransformerBlock ----

TransformerBlock::TransformerBlock(const GPTConfig& cfg, bool init) : Module("TransformerBlock") {
  ln_1 = register_module("ln_1", std::make_shared<LayerNorm>(cfg.d_model, 1e-5, cfg.dtype));
  attn = register_module("attn", std::make_shared<CausalSelfAttention>(cfg.d_model, cfg.n_head, cfg.dropout,
                                                                       cfg.dtype, init));
  ln_2 = register_module("ln_2", std::make_shared<LayerNorm>(cfg.d_model, 1e-5, cfg.dtype));
  mlp = register_module("mlp", std::make_shared<MLP>(cfg.d_model, cfg.dropout, cfg.dtype, init));
}

// x: [B, T, C]; pre-LN: the residual stream itself is never normalised.
Tensor TransformerBlock::forward(const Tensor& x) {
  Tensor h = x + attn->forward(ln_1->forward(x));
  return h + mlp->forward(ln_2->forward(h));
}

// ---- GPTEmbedding ----

GPTEmbedding::GPTEmbedding(const GPTConfig& cfg, bool init) : Module("GPTEmbedding"), dropout_p_(cfg.dropout) {
  wte = register_module("wte", std::make_shared<Embedding>(cfg.vocab_size, cfg.d_model, cfg.dtype, nullptr, init));
  wpe = register_module("wpe", std::make_shared<Embedding>(cfg.context, cfg.d_model, cfg.dtype, nullptr, init));
}

// tokens: [B, T] -> wte[tokens] + wpe[0:T]: [B, T, C] (the position rows broadcast over B)
Tensor GPTEmbedding::forward(const Tensor& tokens) {
  MP_CHECK(tokens.defined() && tokens.dim() == 2, "GPTEmbedding: expected tokens [B, T], got ",
           tokens.defined() ? shape_str(tokens.sizes()) : "undefined");
  const int64_t T = tokens.size(1);
  MP_CHECK(T >= 1 && T <= wpe->num_embeddings, "GPTEmbedding: sequence length ", T, " is outside 1..context=",
           wpe->num_embeddings);
  Tensor tok = wte->forward(tokens);                // [B, T, C]
  Tensor pos = narrow(wpe->weight, 0, 0, T);        // [T, C]
  return dropout(tok + pos, dropout_p_, is_training(), random_source("emb"));
}

// ---- LMHead ----

LMHead::LMHead(int64_t c, int64_t v, DType dtype) : Module("LMHead") {
  weight = register_parameter("weight", zeros({v, c}, dtype));  // make_gpt draws it
}

LMHead::LMHead(Tensor tied_weight) : Module("LMHead"), weight(std::move(tied_weight)), tied(true) {
  MP_CHECK(weight.defined() && weight.dim() == 2, "LMHead: tied weight must be [V, C]");
}

std::string LMHead::extra_repr() const {
  return "vocab=" + std::to_string(weight.size(0)) + ", d_model=" + std::to_string(weight.size(1)) +
         (tied ? ", tied to the token embedding" : "");
}

// ---- the stack ----

namespace {

// Calls fn(module, prefix) for `m` and every descendant, depth first, in registration order.
void walk_modules(const Module& m, const std::string& prefix,
                  const std::function<void(const Module&, const std::string&)>& fn) {
  fn(m, prefix);
  for (const auto& [name, child] : m.named_children()) walk_modules(*child, prefix + name + ".", fn);
}

void fill_normal_(const Tensor& t, double std, Generator* gen) {
  NoGradGuard guard;
  ops::copy_(t, ops::mul_scalar(randn(t.sizes(), t.options(), gen), std));
}

}  // namespace

std::shared_ptr<Sequential> make_gpt(const GPTConfig& cfg, Generator* init_gen) {
  cfg.validate();
  // Sub-layers are built without drawing (init=false); every weight is drawn below from init_gen.
  auto model = std::make_shared<Sequential>();
  auto emb = std::make_shared<GPTEmbedding>(cfg, false);
  model->push_back(emb);
  for (int64_t i = 0; i < cfg.n_layer; ++i) model->push_back(std::make_shared<TransformerBlock>(cfg, false));
  model->push_back(std::make_shared<LayerNorm>(cfg.d_model, 1e-5, cfg.dtype));
  model->push_back(cfg.tie_weights ? std::make_shared<LMHead>(emb->wte->weight)
                                   : std::make_shared<LMHead>(cfg.d_model, cfg.vocab_size, cfg.dtype));

  // GPT-2 init, in parameter-registration order (so a seed fixes every weight). The residual
  // projections add into the stream twice per block: scaled by 1/sqrt(2 n_layer) so the
  // stream's variance does not grow with depth.
  const double init_std = 0.02, resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  walk_modules(*model, "", [&](const Module& m, const std::string& prefix) {
    if (m.type_name() == "LayerNorm") return;  // weight 1, bias 0 as constructed
    const bool residual = ends_with(prefix, "attn.proj.") || ends_with(prefix, "mlp.proj.");
    for (const auto& [name, p] : m.named_parameters(false)) {
      if (name == "bias") {
        NoGradGuard guard;
        ops::fill_(p, 0.0);
      } else {
        fill_normal_(p, residual ? resid_std : init_std, init_gen);
      }
    }
  });
  return model;
}

std::vector<optim::ParamGroup> gpt_param_groups(const Module& model, double weight_decay) {
  MP_CHECK(weight_decay >= 0, "gpt_param_groups: weight decay must be non-negative, got ", weight_decay);
  optim::ParamGroup decay{{}, -1, weight_decay}, no_decay{{}, -1, 0.0};
  walk_modules(model, "", [&](const Module& m, const std::string&) {
    const bool matmul = m.type_name() == "Linear" || m.type_name() == "LMHead";
    for (const auto& [name, p] : m.named_parameters(false))
      (matmul && name == "weight" ? decay : no_decay).params.push_back(p);
  });
  return {decay, no_decay};
}

Tensor gpt_loss(const Tensor& logits, const Tensor& targets) {
  MP_CHECK(logits.dim() == 3 && targets.dim() == 2 && logits.size(0) == targets.size(0) &&
               logits.size(1) == targets.size(1),
           "gpt_loss: expected logits [B, T, V] and targets [B, T], got ", shape_str(logits.sizes()), " and ",
           shape_str(targets.sizes()));
  const int64_t V = logits.size(2);
  return cross_entropy(reshape(logits, {-1, V}), ops::reshape(targets, {-1}));
}

int64_t gpt_flops_per_token(const Module& model, const GPTConfig& cfg) {
  int64_t n = 0;
  walk_modules(model, "", [&](const Module& m, const std::string&) {
    if (m.type_name() == "Linear") n += m.num_parameters();
    if (m.type_name() == "LMHead") n += cfg.vocab_size * cfg.d_model;  // tied or not: V C MACs
  });
  return 6 * n + 12 * cfg.n_layer * cfg.context * cfg.d_model;
}

std::vector<int64_t> gpt_generate(Module& model, const GPTConfig& cfg, std::vector<int64_t> tokens, int64_t n,
                                  const SampleOptions& opts, Generator& gen) {
  MP_CHECK(!tokens.empty(), "gpt_generate: the prompt must hold at least one token");
  MP_CHECK(opts.temperature >= 0, "gpt_generate: temperature must be >= 0, got ", opts.temperature);
  MP_CHECK(opts.top_k >= 0, "gpt_generate: top_k must be >= 0, got ", opts.top_k);
  NoGradGuard guard;
  // Sampling runs in eval mode; the caller's mode comes back however this returns (an error too).
  struct RestoreMode {
    Module& m;
    const bool was_training;
    ~RestoreMode() { m.train(was_training); }
  } restore{model, model.is_training()};
  model.eval();
  // Tokens go to the model's device; the logits come back to the CPU to be sampled.
  const auto params = model.parameters();
  const Device device = params.empty() ? Device::cpu() : params[0].device();
  std::vector<double> p;
  for (int64_t step = 0; step < n; ++step) {
    // The last `context` tokens: [1, Tw] -> logits [1, Tw, V]; only the last row is used.
    const int64_t tw = std::min<int64_t>(static_cast<int64_t>(tokens.size()), cfg.context);
    std::vector<int64_t> window(tokens.end() - tw, tokens.end());
    const Tensor out = model.forward(from_vector(window, {1, tw}).to(device));
    MP_CHECK(out.dim() == 3 && out.size(0) == 1 && out.size(1) == tw, "gpt_generate: expected logits [1, ", tw,
             ", V] from the model, got ", shape_str(out.sizes()));
    // V from the logits themselves: the buffer below must match what is read.
    MP_CHECK(out.size(2) == cfg.vocab_size, "gpt_generate: the model returned ", out.size(2),
             " logits per position, but the config says vocab_size=", cfg.vocab_size);
    Tensor logits = ops::to(ops::to(ops::select(ops::select(out, 0, 0), 0, tw - 1), Device::cpu()), DType::Float64);
    logits = ops::contiguous(logits);
    const double* l = logits.data_ptr<double>();
    const size_t V = static_cast<size_t>(logits.size(0));
    p.resize(V);
    size_t best = 0;
    for (size_t v = 1; v < V; ++v)
      if (l[v] > l[best]) best = v;
    if (opts.temperature == 0) {
      tokens.push_back(static_cast<int64_t>(best));
      continue;
    }
    // Top-k: keep logits >= the k-th largest; softmax(l / temperature) over what is kept.
    double cut = -INFINITY;
    if (opts.top_k > 0 && opts.top_k < static_cast<int64_t>(V)) {
      std::vector<double> sorted(l, l + V);
      std::nth_element(sorted.begin(), sorted.begin() + (opts.top_k - 1), sorted.end(), std::greater<>());
      cut = sorted[static_cast<size_t>(opts.top_k - 1)];
    }
    double total = 0;
    for (size_t v = 0; v < V; ++v) {
      p[v] = l[v] >= cut ? std::exp((l[v] - l[best]) / opts.temperature) : 0.0;
      total += p[v];
    }
    double u = gen.uniform() * total;
    size_t pick = best;
    for (size_t v = 0; v < V; ++v) {
      if (p[v] == 0) continue;
      pick = v;
      if ((u -= p[v]) < 0) break;
    }
    tokens.push_back(static_cast<int64_t>(pick));
  }
  return tokens;
}

}  // namespace minipipe::nn
