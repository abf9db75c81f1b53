// Python bindings, nn area: minipipe.nn (Module, Linear, activations, Sequential, the GPT of
// nn/transformer.h, Fashion-MNIST and text data) and minipipe.optim (SGD, AdamW, lr schedule,
// clipping). Modules live in shared_ptrs on both sides, so a Pipe can share a model built here.
#include <pybind11/stl.h>

#include "nn/nn.h"
#include "nn/text_data.h"
#include "nn/transformer.h"
#include "python/bind.h"

namespace minipipe::python {

namespace {

// Text as Python str: UTF-8, any invalid byte shown as U+FFFD (the fortunes are valid UTF-8).
py::str text_of(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<py::ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

Tensor ids_tensor(const std::vector<int64_t>& ids) {
  return from_vector(ids);
}

std::vector<int64_t> ids_of(const Tensor& t) {
  MP_CHECK(t.dtype() == DType::Int64 && t.dim() == 1, "expected token ids as a 1-D int64 tensor, got ",
           dtype_name(t.dtype()), " ", shape_str(t.sizes()));
  return t.to_vector<int64_t>();
}

// A list of tensors (one group), or of dicts {"params": [...], "lr": ..., "weight_decay": ...}.
std::vector<optim::ParamGroup> groups_of(const py::handle& params) {
  std::vector<optim::ParamGroup> groups;
  std::vector<Tensor> plain;
  for (py::handle item : params) {
    if (py::isinstance<py::dict>(item)) {
      py::dict d = py::reinterpret_borrow<py::dict>(item);
      MP_CHECK(d.contains("params"), "a parameter group needs a 'params' list");
      optim::ParamGroup g;
      g.params = d["params"].cast<std::vector<Tensor>>();
      if (d.contains("lr")) g.lr = d["lr"].cast<double>();
      if (d.contains("weight_decay")) g.weight_decay = d["weight_decay"].cast<double>();
      groups.push_back(std::move(g));
    } else {
      plain.push_back(item.cast<Tensor>());
    }
  }
  MP_CHECK(groups.empty() || plain.empty(), "pass either tensors or parameter groups (dicts), not both");
  if (groups.empty()) groups.push_back({std::move(plain)});
  return groups;
}

py::dict group_dict(const optim::ParamGroup& g) {
  py::dict d;
  d["params"] = g.params;
  if (g.lr >= 0) d["lr"] = g.lr;
  if (g.weight_decay >= 0) d["weight_decay"] = g.weight_decay;
  return d;
}

void bind_modules(py::module_& mnn) {
  using nn::Module;
  py::class_<Module, std::shared_ptr<Module>>(mnn, "Module", "nn::Module: named parameters and child modules")
      .def("__call__", [](Module& m, const Tensor& x) { return m(x); })
      .def("forward", &Module::forward)
      .def("parameters", [](const Module& m) { return m.parameters(); })
      .def("named_parameters",
           [](const Module& m) {
             py::dict d;
             for (const auto& [name, t] : m.named_parameters()) d[py::str(name)] = t;
             return d;
           },
           "{dotted name: tensor}, in registration order ('0.weight', '1.attn.qkv.bias', ...)")
      .def("num_parameters", &Module::num_parameters)
      .def("train", [](Module& m, bool on) { m.train(on); }, py::arg("mode") = true)
      .def("eval", &Module::eval)
      .def_property_readonly("training", &Module::is_training)
      .def("zero_grad", &Module::zero_grad, "set every parameter's grad to None")
      .def_property_readonly("type_name", &Module::type_name)
      .def("__repr__", [](const Module& m) { return m.repr(); });

  py::class_<nn::Linear, Module, std::shared_ptr<nn::Linear>>(mnn, "Linear", "y = x W^T + b, W: [out, in]")
      .def(py::init([](int64_t in, int64_t out, bool bias, py::object dtype, Generator* gen) {
             return std::make_shared<nn::Linear>(
                 nn::LinearOptions(in, out).bias(bias).dtype(to_dtype(dtype)).generator(gen));
           }),
           py::arg("in_features"), py::arg("out_features"), py::arg("bias") = true, py::arg("dtype") = "float32",
           py::arg("generator") = nullptr, "weights U(-k, k), k = 1/sqrt(in), drawn from generator (None: the default)")
      .def_readonly("weight", &nn::Linear::weight)
      .def_property_readonly("bias", [](const nn::Linear& l) -> std::optional<Tensor> {
        if (!l.bias.defined()) return std::nullopt;
        return l.bias;
      });
  py::class_<nn::ReLU, Module, std::shared_ptr<nn::ReLU>>(mnn, "ReLU").def(py::init<>());
  py::class_<nn::GELU, Module, std::shared_ptr<nn::GELU>>(mnn, "GELU").def(py::init<>());
  py::class_<nn::Dropout, Module, std::shared_ptr<nn::Dropout>>(mnn, "Dropout").def(py::init<double>(), py::arg("p") = 0.5);
  py::class_<nn::Flatten, Module, std::shared_ptr<nn::Flatten>>(mnn, "Flatten")
      .def(py::init<int64_t, int64_t>(), py::arg("start_dim") = 1, py::arg("end_dim") = -1);

  py::class_<nn::Sequential, Module, std::shared_ptr<nn::Sequential>>(
      mnn, "Sequential", "layers applied in order; Sequential(a, b, c) or Sequential([a, b, c]); s[1:3] shares layers")
      .def(py::init([](py::args layers) {
        auto s = std::make_shared<nn::Sequential>();
        const bool one_list = layers.size() == 1 && py::isinstance<py::sequence>(layers[0]);
        for (py::handle l : one_list ? py::reinterpret_borrow<py::sequence>(layers[0]) : py::sequence(layers))
          s->push_back(l.cast<nn::ModulePtr>());
        return s;
      }))
      .def("append", [](nn::Sequential& s, nn::ModulePtr m) { s.push_back(std::move(m)); }, py::arg("module"))
      .def("__len__", &nn::Sequential::size)
      .def("__getitem__",
           [](const nn::Sequential& s, int64_t i) {
             const auto n = static_cast<int64_t>(s.size());
             if (i < -n || i >= n) throw py::index_error("Sequential index " + std::to_string(i) + " out of range for " +
                                                         std::to_string(n) + " layers");
             return s[static_cast<size_t>(i < 0 ? i + n : i)];
           })
      .def("__getitem__", [](const nn::Sequential& s, py::slice sl) {
        size_t start = 0, stop = 0, step = 0, len = 0;
        if (!sl.compute(s.size(), &start, &stop, &step, &len)) throw py::error_already_set();
        MP_CHECK(step == 1, "Sequential slices take step 1, got ", step);
        return s.slice(start, std::max(start, stop));
      });
}

void bind_gpt(py::module_& mnn) {
  py::class_<nn::GPTConfig>(mnn, "GPTConfig", "the GPT-2-style model's sizes (nn/transformer.h)")
      .def(py::init([](int64_t vocab, int64_t context, int64_t n_layer, int64_t n_head, int64_t d_model,
                       double dropout, bool tie, py::object dtype) {
             nn::GPTConfig c;
             c.vocab_size = vocab;
             c.context = context;
             c.n_layer = n_layer;
             c.n_head = n_head;
             c.d_model = d_model;
             c.dropout = dropout;
             c.tie_weights = tie;
             c.dtype = to_dtype(dtype);
             c.validate();
             return c;
           }),
           py::arg("vocab_size") = 256, py::arg("context") = 128, py::arg("n_layer") = 4, py::arg("n_head") = 4,
           py::arg("d_model") = 128, py::arg("dropout") = 0.0, py::arg("tie_weights") = false,
           py::arg("dtype") = "float32")
      .def_readwrite("vocab_size", &nn::GPTConfig::vocab_size)
      .def_readwrite("context", &nn::GPTConfig::context)
      .def_readwrite("n_layer", &nn::GPTConfig::n_layer)
      .def_readwrite("n_head", &nn::GPTConfig::n_head)
      .def_readwrite("d_model", &nn::GPTConfig::d_model)
      .def_readwrite("dropout", &nn::GPTConfig::dropout)
      .def_readwrite("tie_weights", &nn::GPTConfig::tie_weights)
      .def("__repr__", &nn::GPTConfig::str);
  mnn.def("make_gpt", &nn::make_gpt, py::arg("config"), py::arg("generator") = nullptr,
         "Sequential [GPTEmbedding, TransformerBlock x n_layer, LayerNorm, LMHead] with GPT-2's init drawn from "
         "generator (None: the default one)");
  mnn.def("gpt_loss", &nn::gpt_loss, py::arg("logits"), py::arg("targets"),
         "mean next-token cross entropy: logits [B, T, V], int64 targets [B, T]");
  mnn.def("gpt_param_groups",
         [](const nn::Module& m, double wd) {
           py::list out;
           for (const auto& g : nn::gpt_param_groups(m, wd)) out.append(group_dict(g));
           return out;
         },
         py::arg("model"), py::arg("weight_decay"), "AdamW groups as GPT-2: decay on matmul weights only");
  mnn.def("gpt_generate",
         [](nn::Module& m, const nn::GPTConfig& cfg, std::vector<int64_t> prompt, int64_t n, double temperature,
            int64_t top_k, Generator& gen) {
           return nn::gpt_generate(m, cfg, std::move(prompt), n, {.temperature = temperature, .top_k = top_k}, gen);
         },
         py::arg("model"), py::arg("config"), py::arg("prompt"), py::arg("n"), py::arg("temperature") = 1.0,
         py::arg("top_k") = 0, py::arg("generator"), "the prompt's token ids followed by n sampled ones");
}

void bind_data(py::module_& mnn) {
  py::class_<nn::Dataset>(mnn, "Dataset", "examples along dim 0: inputs [N, ...], targets [N]")
      .def(py::init([](Tensor x, Tensor y) { return nn::Dataset{std::move(x), std::move(y)}; }), py::arg("inputs"),
           py::arg("targets"))
      .def_readwrite("inputs", &nn::Dataset::inputs)
      .def_readwrite("targets", &nn::Dataset::targets)
      .def("__len__", &nn::Dataset::size);
  mnn.def("load_fashion_mnist", &nn::load_fashion_mnist, py::arg("dir") = nn::kFashionMnistDir,
         py::arg("train") = true, py::arg("normalize") = true,
         "Debian's dataset-fashion-mnist: inputs float32 [N, 784], targets int64 [N] (60000 train, 10000 test)");

  py::class_<nn::DataLoader>(mnn, "DataLoader",
                             "Mini-batches in a seeded order that depends only on (seed, epoch). Iterate it for the "
                             "current epoch's (inputs, targets) batches; reset(epoch) starts an epoch.")
      .def(py::init([](nn::Dataset d, int64_t batch, bool shuffle, uint64_t seed, bool drop_last) {
             return std::make_unique<nn::DataLoader>(
                 std::move(d), nn::DataLoaderOptions(batch).shuffle(shuffle).seed(seed).drop_last(drop_last));
           }),
           py::arg("dataset"), py::arg("batch_size"), py::arg("shuffle") = true, py::arg("seed") = 0,
           py::arg("drop_last") = false)
      .def("reset", &nn::DataLoader::reset, py::arg("epoch") = 0)
      .def("__iter__", [](nn::DataLoader& l) -> nn::DataLoader& { return l; }, py::return_value_policy::reference_internal)
      .def("__next__",
           [](nn::DataLoader& l) {
             auto b = l.next();
             if (!b) throw py::stop_iteration();
             return py::make_tuple(b->inputs, b->targets);
           })
      .def("__len__", &nn::DataLoader::num_batches)
      .def_property_readonly("epoch", &nn::DataLoader::epoch);

  mnn.def("load_fortunes", [](const std::string& dir) { return text_of(nn::load_fortunes(dir)); },
         py::arg("dir") = nn::kFortunesDir, "the English fortunes of Debian's fortunes package, concatenated");
  mnn.def("read_text_file", [](const std::string& p) { return text_of(nn::read_text_file(p)); }, py::arg("path"));
  py::class_<nn::Vocabulary>(mnn, "Vocabulary", "token ids <-> bytes: chars(text) (its sorted unique bytes) or bytes()")
      .def_static("chars", [](const std::string& text) { return nn::Vocabulary::chars(text); }, py::arg("text"))
      .def_static("bytes", &nn::Vocabulary::bytes)
      .def_property_readonly("size", &nn::Vocabulary::size)
      .def("__len__", &nn::Vocabulary::size)
      .def("encode", [](const nn::Vocabulary& v, const std::string& text) { return ids_tensor(v.encode(text)); },
           py::arg("text"), "a 1-D int64 tensor of token ids (of the text's UTF-8 bytes)")
      .def("decode", [](const nn::Vocabulary& v, const std::vector<int64_t>& ids) { return text_of(v.decode(ids)); },
           py::arg("ids"))
      .def("decode", [](const nn::Vocabulary& v, const Tensor& ids) { return text_of(v.decode(ids_of(ids))); },
           py::arg("ids"));
  mnn.def("split_train_val",
         [](const Tensor& tokens, double frac, int64_t block) {
           nn::TextSplit s = nn::split_train_val(ids_of(tokens), frac, block);
           return py::make_tuple(ids_tensor(s.train), ids_tensor(s.val));
         },
         py::arg("tokens"), py::arg("val_fraction") = 0.1, py::arg("block") = 8192,
         "(train, val): every (1/val_fraction)-th block of `block` tokens goes to validation");
  mnn.def("sample_batch",
         [](const Tensor& tokens, int64_t batch, int64_t context, Generator& gen) {
           nn::Batch b = nn::sample_batch(ids_of(tokens), batch, context, gen);
           return py::make_tuple(b.x, b.y);
         },
         py::arg("tokens"), py::arg("batch"), py::arg("context"), py::arg("generator"),
         "(x, y), both int64 [batch, context]: random windows, y shifted by one token");
}

void bind_optim(py::module_ optim) {
  py::class_<optim::Optimizer>(optim, "Optimizer")
      .def("step", &optim::Optimizer::step)
      .def("zero_grad", &optim::Optimizer::zero_grad)
      .def_property("lr", &optim::Optimizer::lr, &optim::Optimizer::set_lr, "every group's learning rate")
      .def("state_bytes", &optim::Optimizer::state_bytes)
      .def_property_readonly("param_groups", [](const optim::Optimizer& o) {
        py::list out;
        for (const auto& g : o.param_groups()) out.append(group_dict(g));
        return out;
      });
  py::class_<optim::SGD, optim::Optimizer>(optim, "SGD", "PyTorch's SGD: momentum, dampening, weight decay, Nesterov")
      .def(py::init([](py::object params, double lr, double momentum, double dampening, double wd, bool nesterov) {
             return std::make_unique<optim::SGD>(
                 groups_of(params), optim::SGDOptions{.lr = lr, .momentum = momentum, .dampening = dampening,
                                                      .weight_decay = wd, .nesterov = nesterov});
           }),
           py::arg("params"), py::arg("lr") = 0.01, py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
           py::arg("weight_decay") = 0.0, py::arg("nesterov") = false);
  py::class_<optim::AdamW, optim::Optimizer>(optim, "AdamW", "AdamW with decoupled weight decay (PyTorch's rule)")
      .def(py::init([](py::object params, double lr, std::pair<double, double> betas, double eps, double wd) {
             return std::make_unique<optim::AdamW>(
                 groups_of(params), optim::AdamWOptions{.lr = lr, .beta1 = betas.first, .beta2 = betas.second,
                                                        .eps = eps, .weight_decay = wd});
           }),
           py::arg("params"), py::arg("lr") = 1e-3, py::arg("betas") = std::make_pair(0.9, 0.999),
           py::arg("eps") = 1e-8, py::arg("weight_decay") = 1e-2);
  optim.def("cosine_lr", &optim::cosine_lr, py::arg("step"), py::arg("total"), py::arg("lr_max"),
            py::arg("lr_min") = 0.0, py::arg("warmup") = 0);
  optim.def("clip_grad_norm_", &optim::clip_grad_norm_, py::arg("params"), py::arg("max_norm"),
            "scale the gradients so their global norm is at most max_norm; returns the norm before");
}

}  // namespace

void bind_nn(py::module_& m) {
  py::module_ mnn = m.def_submodule("nn", "layers, the GPT, data (nn/)");
  bind_modules(mnn);
  bind_gpt(mnn);
  bind_data(mnn);
  bind_optim(m.def_submodule("optim", "optimizers (nn/optim.h)"));
}

}  // namespace minipipe::python
