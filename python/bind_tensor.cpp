// Python bindings, tensor area: minipipe.Tensor (NumPy in and out, autograd slots, operators), the
// factories, the random Generator, no_grad, and the differentiable ops of autograd/functions.h.
// NumPy: a CPU tensor's memory is shared out (buffer protocol, .numpy()); arrays are copied in.
#include <pybind11/numpy.h>
#include <pybind11/operators.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>

#include "autograd/functions.h"
#include "python/bind.h"
#include "tensor/threads.h"

namespace minipipe::python {

DType to_dtype(py::handle obj) {
  std::string name;
  if (py::isinstance<py::str>(obj))
    name = obj.cast<std::string>();
  else
    name = py::str(py::dtype::from_args(py::reinterpret_borrow<py::object>(obj)).attr("name"));
  if (name == "float32") return DType::Float32;
  if (name == "float64") return DType::Float64;
  if (name == "int64") return DType::Int64;
  throw py::type_error("minipipe has dtypes float32, float64 and int64, got " + name);
}

Shape to_shape(py::handle obj) {
  Shape s;
  if (py::isinstance<py::int_>(obj)) {
    s.push_back(obj.cast<int64_t>());
    return s;
  }
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw py::type_error("expected a shape (an int or a sequence of ints), got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  for (py::handle d : obj) s.push_back(d.cast<int64_t>());
  return s;
}

py::tuple shape_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

namespace {

// t.reshape(2, 3) and t.reshape((2, 3)) alike.
Shape shape_of_args(const py::args& args) {
  if (args.size() == 1 && !py::isinstance<py::int_>(args[0])) return to_shape(args[0]);
  Shape s;
  for (py::handle d : args) s.push_back(d.cast<int64_t>());
  return s;
}

// None: every dim; an int; or a list of ints.
std::optional<std::vector<int64_t>> dims_of(const py::object& dim) {
  if (dim.is_none()) return std::nullopt;
  if (py::isinstance<py::int_>(dim)) return std::vector<int64_t>{dim.cast<int64_t>()};
  return dim.cast<std::vector<int64_t>>();
}

py::dtype numpy_dtype(DType d) {
  switch (d) {
    case DType::Float32: return py::dtype::of<float>();
    case DType::Float64: return py::dtype::of<double>();
    case DType::Int64: return py::dtype::of<int64_t>();
  }
  throw py::type_error("unknown dtype");
}

// What may be shared with NumPy: a defined CPU tensor outside autograd's sight (PyTorch's rule:
// writes through NumPy into a tensor autograd saved would silently corrupt gradients).
void check_exportable(const Tensor& t, const char* what) {
  MP_CHECK(t.defined(), what, ": the tensor is undefined");
  MP_CHECK(t.device().is_cpu(), what, ": the tensor is on ", t.device().str(), "; NumPy sees CPU memory only");
  MP_CHECK(!t.requires_grad(), what,
           ": the tensor requires grad; use .detach().numpy() (shares memory: NumPy writes are not seen by autograd)");
}

std::vector<py::ssize_t> byte_strides(const Tensor& t) {
  std::vector<py::ssize_t> out;
  for (int64_t s : t.strides()) out.push_back(static_cast<py::ssize_t>(s * static_cast<int64_t>(element_size(t.dtype()))));
  return out;
}

std::vector<py::ssize_t> sizes_of(const Tensor& t) {
  std::vector<py::ssize_t> out;
  for (int64_t s : t.sizes()) out.push_back(static_cast<py::ssize_t>(s));
  return out;
}

// A NumPy array over the tensor's memory (views too: NumPy takes the strides). The array's base
// holds a handle on the storage, so the memory outlives the Tensor object.
py::array to_numpy(const Tensor& t) {
  check_exportable(t, "numpy()");
  auto* keep = new Tensor(t.detach());
  py::capsule base(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(numpy_dtype(t.dtype()), sizes_of(t), byte_strides(t), t.raw_data(), base);
}

py::buffer_info buffer_of(const Tensor& t) {
  check_exportable(t, "buffer protocol");
  const std::string format = t.dtype() == DType::Float32   ? py::format_descriptor<float>::format()
                             : t.dtype() == DType::Float64 ? py::format_descriptor<double>::format()
                                                           : py::format_descriptor<int64_t>::format();
  return py::buffer_info(t.raw_data(), static_cast<py::ssize_t>(element_size(t.dtype())), format, t.dim(),
                         sizes_of(t), byte_strides(t));
}

template <typename T>
Tensor copy_array(const py::handle& a) {
  auto c = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!c) throw py::error_already_set();
  Shape shape;
  for (py::ssize_t i = 0; i < c.ndim(); ++i) shape.push_back(static_cast<int64_t>(c.shape(i)));
  Tensor out = empty(shape, dtype_of<T>());
  if (out.numel() > 0) std::memcpy(out.raw_data(), c.data(), out.nbytes());
  return out;
}

Tensor copy_array(const py::handle& a, DType d) {
  switch (d) {
    case DType::Float32: return copy_array<float>(a);
    case DType::Float64: return copy_array<double>(a);
    case DType::Int64: return copy_array<int64_t>(a);
  }
  throw py::type_error("unknown dtype");
}

// An ndarray keeps its dtype (float32, float64 or int64; others need dtype=); anything else goes
// through np.asarray, floats becoming float32 (PyTorch's default) and ints / bools int64.
Tensor tensor_from(const py::object& data, const py::object& dtype, bool requires_grad) {
  py::module_ np = py::module_::import("numpy");
  Tensor out;
  if (py::isinstance<Tensor>(data)) {
    const Tensor& t = data.cast<const Tensor&>();
    out = ops::clone(t.detach());
    if (!dtype.is_none()) out = ops::to(out, to_dtype(dtype));
  } else if (py::isinstance<py::array>(data)) {
    py::array a = data.cast<py::array>();
    DType d;
    if (!dtype.is_none()) {
      d = to_dtype(dtype);
    } else {
      const std::string name = py::str(a.dtype().attr("name"));
      if (name != "float32" && name != "float64" && name != "int64")
        throw py::type_error("minipipe.tensor: arrays of dtype " + name +
                             " need a dtype= (float32, float64 or int64) to convert to");
      d = to_dtype(a.dtype());
    }
    out = copy_array(a, d);
  } else {
    py::array a = np.attr("asarray")(data);
    DType d;
    if (!dtype.is_none()) {
      d = to_dtype(dtype);
    } else {
      const char kind = a.dtype().kind();
      if (kind == 'f') d = DType::Float32;
      else if (kind == 'i' || kind == 'u' || kind == 'b') d = DType::Int64;
      else
        throw py::type_error("minipipe.tensor: cannot make a tensor from " +
                             std::string(py::str(py::type::of(data).attr("__name__"))) + " (NumPy dtype " +
                             std::string(py::str(a.dtype().attr("name"))) + ")");
    }
    out = copy_array(a, d);
  }
  if (requires_grad) out.set_requires_grad(true);
  return out;
}

std::optional<Tensor> optional(const Tensor& t) {
  if (!t.defined()) return std::nullopt;
  return t;
}

// A `with minipipe.no_grad():` block: NoGradGuard for its extent, on the thread that entered it.
struct NoGrad {
  std::optional<NoGradGuard> guard;
};

void bind_tensor_class(py::module_& m) {
  py::class_<Tensor> t(m, "Tensor", py::buffer_protocol(),
                       "A handle to shared storage plus sizes, strides, dtype and device (like torch.Tensor). "
                       "Copying the handle does not copy the data. np.asarray(t) and t.numpy() share its memory.");
  t.def_buffer(&buffer_of)
      .def_property_readonly("shape", [](const Tensor& x) { return shape_tuple(x.sizes()); })
      .def_property_readonly("strides", [](const Tensor& x) { return shape_tuple(x.strides()); },
                             "in elements (NumPy's are in bytes)")
      .def_property_readonly("dtype", [](const Tensor& x) { return dtype_name(x.dtype()); })
      .def_property_readonly("device", [](const Tensor& x) { return x.device().str(); })
      .def_property_readonly("ndim", &Tensor::dim)
      .def("dim", &Tensor::dim)
      .def("numel", &Tensor::numel)
      .def("size", [](const Tensor& x, int64_t d) { return x.size(d); }, py::arg("dim"))
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("shares_storage", &Tensor::shares_storage, py::arg("other"))
      .def_property_readonly("data_ptr", [](const Tensor& x) { return reinterpret_cast<uintptr_t>(x.raw_data()); },
                             "address of element [0, 0, ...]")
      .def("__len__", [](const Tensor& x) { return x.size(0); })
      .def("__repr__", &Tensor::str)
      .def("item", &Tensor::item, "the value of a one-element tensor, as a float")
      .def("numpy", &to_numpy,
           "A NumPy array sharing this tensor's memory (no copy; views keep their strides). The array keeps the "
           "storage alive. CPU tensors that do not require grad only (use .detach().numpy()).")
      .def("tolist", [](const Tensor& x) { return to_numpy(x.detach()).attr("tolist")(); })
      // autograd
      .def_property(
          "requires_grad", &Tensor::requires_grad,
          [](Tensor& x, bool r) { x.set_requires_grad(r); }, "settable on leaves")
      .def("requires_grad_", [](Tensor& x, bool r) -> Tensor& { return x.set_requires_grad(r); },
           py::arg("requires_grad") = true, py::return_value_policy::reference_internal)
      .def_property(
          "grad", [](const Tensor& x) { return optional(x.grad()); },
          [](Tensor& x, std::optional<Tensor> g) { x.mutable_grad() = g ? *g : Tensor(); },
          "the accumulated gradient of a leaf (None before a backward reaches it)")
      .def_property_readonly("is_leaf", &Tensor::is_leaf)
      .def_property_readonly("grad_fn",
                             [](const Tensor& x) -> std::optional<std::string> {
                               if (!x.grad_fn()) return std::nullopt;
                               return x.grad_fn()->name();
                             },
                             "the name of the node that made this tensor (None for leaves)")
      .def(
          "backward",
          [](const Tensor& x, std::optional<Tensor> gradient, bool retain_graph) {
            if (gradient) x.backward(*gradient, retain_graph);
            else x.backward(retain_graph);
          },
          py::arg("gradient") = py::none(), py::arg("retain_graph") = false,
          "Backpropagate into the leaves' .grad (accumulating). Without gradient the tensor must be a scalar.")
      .def("detach", &Tensor::detach, "the same storage, cut from the graph")
      // views and conversions
      .def("reshape", [](const Tensor& x, py::args s) { return reshape(x, shape_of_args(s)); })
      .def("view", [](const Tensor& x, py::args s) { return view(x, shape_of_args(s)); })
      .def("permute", [](const Tensor& x, py::args s) {
        const Shape p = shape_of_args(s);
        return permute(x, std::vector<int64_t>(p.begin(), p.end()));
      })
      .def("transpose", [](const Tensor& x, int64_t a, int64_t b) { return transpose(x, a, b); })
      .def_property_readonly("T", [](const Tensor& x) {
        MP_CHECK(x.dim() == 2, "T: expected a 2-D tensor, got ", x.dim(), "-D ", shape_str(x.sizes()));
        return transpose(x, 0, 1);
      })
      .def("flatten", [](const Tensor& x, int64_t s, int64_t e) { return flatten(x, s, e); },
           py::arg("start_dim") = 0, py::arg("end_dim") = -1)
      .def("unsqueeze", [](const Tensor& x, int64_t d) { return unsqueeze(x, d); })
      .def("squeeze", [](const Tensor& x, int64_t d) { return squeeze(x, d); })
      .def("contiguous", [](const Tensor& x) { return contiguous(x); })
      .def("to", [](const Tensor& x, py::object d) { return to(x, to_dtype(d)); }, py::arg("dtype"))
      .def("float", [](const Tensor& x) { return to(x, DType::Float32); })
      .def("double", [](const Tensor& x) { return to(x, DType::Float64); })
      // reductions and elementwise
      .def("sum", [](const Tensor& x, py::object dim, bool keep) {
        auto d = dims_of(dim);
        return d ? sum(x, *d, keep) : sum(x);
      }, py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("mean", [](const Tensor& x, py::object dim, bool keep) {
        auto d = dims_of(dim);
        return d ? mean(x, *d, keep) : mean(x);
      }, py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("argmax", [](const Tensor& x, int64_t d, bool k) { return argmax(x, d, k); }, py::arg("dim"),
           py::arg("keepdim") = false)
      .def("matmul", [](const Tensor& a, const Tensor& b) { return matmul(a, b); })
      .def("relu", [](const Tensor& x) { return relu(x); })
      .def("exp", [](const Tensor& x) { return exp(x); })
      .def("log", [](const Tensor& x) { return log(x); })
      .def("sqrt", [](const Tensor& x) { return sqrt(x); })
      .def("tanh", [](const Tensor& x) { return tanh(x); })
      .def("sigmoid", [](const Tensor& x) { return sigmoid(x); })
      .def("softmax", [](const Tensor& x, int64_t d) { return softmax(x, d); }, py::arg("dim"))
      .def("log_softmax", [](const Tensor& x, int64_t d) { return log_softmax(x, d); }, py::arg("dim"))
      // operators: tensors broadcast; Python numbers are scalars
      .def(py::self + py::self)
      .def(py::self - py::self)
      .def(py::self * py::self)
      .def(py::self / py::self)
      .def(py::self + double())
      .def(double() + py::self)
      .def(py::self - double())
      .def(double() - py::self)
      .def(py::self * double())
      .def(double() * py::self)
      .def(py::self / double())
      .def(-py::self)
      .def("__matmul__", [](const Tensor& a, const Tensor& b) { return matmul(a, b); })
      .def("__pow__", [](const Tensor& a, double e) { return pow(a, e); });
}

void bind_functions(py::module_& m) {
  m.def("tensor", &tensor_from, py::arg("data"), py::arg("dtype") = py::none(), py::arg("requires_grad") = false,
        "A new tensor holding a COPY of data (an ndarray, a nested list, a number or a Tensor). An ndarray keeps "
        "its dtype (float32, float64, int64; others need dtype=); lists of floats become float32, of ints int64.");
  m.def("from_numpy", [](py::array a) { return tensor_from(a, py::none(), false); }, py::arg("array"),
        "A new tensor holding a COPY of the array (float32, float64 or int64). minipipe tensors own their memory "
        "(the allocator's aligned blocks), so sharing goes the other way only: Tensor.numpy() is zero-copy.");
  const auto dtype_arg = py::arg("dtype") = "float32";
  m.def("zeros", [](py::object s, py::object d, bool rg) { return zeros(to_shape(s), to_dtype(d)).set_requires_grad(rg); },
        py::arg("shape"), dtype_arg, py::arg("requires_grad") = false);
  m.def("ones", [](py::object s, py::object d, bool rg) { return ones(to_shape(s), to_dtype(d)).set_requires_grad(rg); },
        py::arg("shape"), dtype_arg, py::arg("requires_grad") = false);
  m.def("full", [](py::object s, double v, py::object d) { return full(to_shape(s), v, to_dtype(d)); },
        py::arg("shape"), py::arg("value"), dtype_arg);
  m.def("arange", [](double start, std::optional<double> end, double step, py::object d) {
          return end ? arange(start, *end, step, to_dtype(d)) : arange(0.0, start, step, to_dtype(d));
        }, py::arg("start"), py::arg("end") = py::none(), py::arg("step") = 1.0, py::arg("dtype") = "float32",
        "arange(end) or arange(start, end, step)");
  m.def("rand", [](py::object s, py::object d, Generator* g) { return rand(to_shape(s), to_dtype(d), g); },
        py::arg("shape"), dtype_arg, py::arg("generator") = nullptr, "U[0, 1) from generator (None: the default one)");
  m.def("randn", [](py::object s, py::object d, Generator* g) { return randn(to_shape(s), to_dtype(d), g); },
        py::arg("shape"), dtype_arg, py::arg("generator") = nullptr, "N(0, 1) from generator (None: the default one)");

  py::class_<Generator>(m, "Generator", "The seeded sequential generator (xoshiro256**): the same numbers everywhere")
      .def(py::init<uint64_t>(), py::arg("seed") = 0)
      .def("manual_seed", &Generator::manual_seed, py::arg("seed"))
      .def_property_readonly("seed", &Generator::seed)
      .def("uniform", &Generator::uniform)
      .def("normal", &Generator::normal);
  m.def("manual_seed", &manual_seed, py::arg("seed"), "reseed the default generator");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "intra-op (OpenMP) threads of this thread");
  m.def("get_num_threads", &get_num_threads);

  py::class_<NoGrad>(m, "no_grad", "with minipipe.no_grad(): ops record no graph (thread-local, as NoGradGuard)")
      .def(py::init<>())
      .def("__enter__", [](NoGrad& g) { g.guard.emplace(); })
      .def("__exit__", [](NoGrad& g, py::args) { g.guard.reset(); });

  // The differentiable ops (autograd/functions.h). Binary ops broadcast.
  using TT = Tensor (*)(const Tensor&, const Tensor&);
  using T1 = Tensor (*)(const Tensor&);
  m.def("add", static_cast<TT>(&add));
  m.def("sub", static_cast<TT>(&sub));
  m.def("mul", static_cast<TT>(&mul));
  m.def("div", static_cast<TT>(&div));
  m.def("matmul", &matmul, "batched and broadcast like torch.matmul");
  m.def("linear", [](const Tensor& x, const Tensor& w, std::optional<Tensor> b) { return linear(x, w, b ? *b : Tensor()); },
        py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(),
        "y = x weight^T + bias; x: [..., in], weight: [out, in] -> [..., out]");
  m.def("neg", static_cast<T1>(&neg));
  m.def("exp", static_cast<T1>(&exp));
  m.def("log", static_cast<T1>(&log));
  m.def("sqrt", static_cast<T1>(&sqrt));
  m.def("tanh", static_cast<T1>(&tanh));
  m.def("sigmoid", static_cast<T1>(&sigmoid));
  m.def("relu", static_cast<T1>(&relu));
  m.def("gelu", static_cast<T1>(&gelu), "tanh approximation, as GPT-2");
  m.def("pow", [](const Tensor& a, double e) { return pow(a, e); }, py::arg("input"), py::arg("exponent"));
  m.def("sum", [](const Tensor& x, py::object dim, bool keep) {
    auto d = dims_of(dim);
    return d ? sum(x, *d, keep) : sum(x);
  }, py::arg("input"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("mean", [](const Tensor& x, py::object dim, bool keep) {
    auto d = dims_of(dim);
    return d ? mean(x, *d, keep) : mean(x);
  }, py::arg("input"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("amax", [](const Tensor& x, int64_t d, bool k) { return amax(x, d, k); }, py::arg("input"), py::arg("dim"),
        py::arg("keepdim") = false);
  m.def("argmax", [](const Tensor& x, int64_t d, bool k) { return argmax(x, d, k); }, py::arg("input"),
        py::arg("dim"), py::arg("keepdim") = false);
  m.def("softmax", [](const Tensor& x, int64_t d) { return softmax(x, d); }, py::arg("input"), py::arg("dim"));
  m.def("log_softmax", [](const Tensor& x, int64_t d) { return log_softmax(x, d); }, py::arg("input"), py::arg("dim"));
  m.def("cross_entropy", [](const Tensor& logits, const Tensor& targets) { return cross_entropy(logits, targets); },
        py::arg("logits"), py::arg("targets"), "log-softmax + NLL, mean over the batch: logits [N, C], int64 targets [N]");
  m.def("dropout", [](const Tensor& x, double p, bool training, Generator* g) { return dropout(x, p, training, g); },
        py::arg("input"), py::arg("p"), py::arg("training") = true, py::arg("generator") = nullptr);
  m.def("where", &where, py::arg("cond"), py::arg("a"), py::arg("b"));
  m.def("cat", &cat, py::arg("tensors"), py::arg("dim") = 0);
  m.def("stack", &stack, py::arg("tensors"), py::arg("dim") = 0);
  m.def("one_hot", [](const Tensor& i, int64_t n) { return one_hot(i, n); }, py::arg("index"), py::arg("num_classes"));
  // Comparisons: 0/1 masks in the inputs' dtype, not differentiable.
  m.def("eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); });
  m.def("ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); });
  m.def("lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); });
  m.def("le", [](const Tensor& a, const Tensor& b) { return le(a, b); });
  m.def("gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); });
  m.def("ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); });
}

}  // namespace

void bind_tensor(py::module_& m) {
  bind_tensor_class(m);
  bind_functions(m);
}

}  // namespace minipipe::python
