// Python bindings, pipeline area (minipipe.parallel): launch() runs a Python function on every rank
// (threads of this process, the `local` communicator), and Pipe trains a model cut into stages.
// The GIL: launch releases it, each rank takes it to run Python, and every collective call
// (Pipe(), train_step, barrier, ...) releases it while it waits for the other ranks.
#include <pybind11/stl.h>

#include <atomic>

#include "parallel/launch.h"
#include "parallel/pipe.h"
#include "nn/transformer.h"
#include "python/bind.h"

namespace minipipe::python {

namespace {

using namespace parallel;
using Alive = std::shared_ptr<std::atomic<bool>>;

constexpr const char* kEnded =
    "its ranks have ended: use a communicator, and a Pipe over it, only inside the function launch() runs";

// A rank's communicator as Python sees it: usable while its launch() runs, an error after.
struct PyComm {
  Communicator* comm;
  Alive alive;
  Communicator& get() const {
    MP_CHECK(alive->load(), "communicator: ", kEnded);
    return *comm;
  }
};

struct PyRankContext {
  PyComm comm;
  int threads, ranks_here, cores;
  std::string budget;
  std::shared_ptr<MemoryAccount> memory;
};

struct PyPipe {
  std::unique_ptr<Pipe> pipe;
  Alive alive;
  Pipe& get() const {
    MP_CHECK(alive->load(), "Pipe: ", kEnded);
    return *pipe;
  }
};

// A Python callable shared with C++ threads: copies of the std::function share one reference, the
// call takes the GIL, and a Python exception becomes a minipipe::Error carrying its text.
template <typename R>
std::function<R(const Tensor&, const Tensor&)> wrap_callable(const py::object& f, const char* what) {
  std::shared_ptr<py::object> fn(new py::object(f), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
  return [fn, what](const Tensor& a, const Tensor& b) -> R {
    py::gil_scoped_acquire gil;
    try {
      return (*fn)(a, b).template cast<R>();
    } catch (py::error_already_set& e) {
      throw Error(std::string(what) + ": " + e.what());
    } catch (const py::cast_error& e) {
      throw Error(std::string(what) + ": the function must return a " +
                  (std::is_same_v<R, Tensor> ? "minipipe.Tensor" : "float") + " (" + e.what() + ")");
    }
  };
}

LossFn loss_of(const py::object& loss) {
  if (py::isinstance<py::str>(loss)) {
    const std::string name = loss.cast<std::string>();
    if (name == "cross_entropy") return [](const Tensor& o, const Tensor& y) { return cross_entropy(o, y); };
    if (name == "gpt_loss") return [](const Tensor& o, const Tensor& y) { return nn::gpt_loss(o, y); };
    throw Error("Pipe: loss must be 'cross_entropy', 'gpt_loss' or a callable (output, targets) -> Tensor, got '" +
                name + "'");
  }
  if (!PyCallable_Check(loss.ptr())) throw py::type_error("Pipe: loss must be a name or a callable");
  return wrap_callable<Tensor>(loss, "loss");
}

using Metric = std::function<double(const Tensor&, const Tensor&)>;
Metric metric_of(const py::object& metric) {
  if (py::isinstance<py::str>(metric)) {
    const std::string name = metric.cast<std::string>();
    MP_CHECK(name == "correct", "evaluate: metric must be 'correct' or a callable (output, targets) -> float, got '",
             name, "'");
    return [](const Tensor& out, const Tensor& y) { return ops::sum(ops::eq(argmax(out, -1), y)).item(); };
  }
  return wrap_callable<double>(metric, "metric");
}

py::list launch_ranks(const py::function& fn, int ranks, int threads_per_rank, double timeout_s) {
  MP_CHECK(ranks >= 1, "launch: ranks must be >= 1, got ", ranks);
  auto alive = std::make_shared<std::atomic<bool>>(true);
  std::vector<py::object> results(static_cast<size_t>(ranks));
  struct EndRanks {  // after launch returns or throws
    Alive alive;
    ~EndRanks() { alive->store(false); }
  } end{alive};
  {
    py::gil_scoped_release release;
    launch({.backend = Backend::Local, .ranks = ranks, .threads_per_rank = threads_per_rank, .timeout_s = timeout_s},
           [&](RankContext& ctx) {
             py::gil_scoped_acquire gil;
             try {
               PyRankContext pctx{{&ctx.comm, alive}, ctx.threads, ctx.ranks_here, ctx.cores, ctx.budget(), ctx.memory};
               results[static_cast<size_t>(ctx.comm.rank())] = fn(pctx);
             } catch (py::error_already_set& e) {
               // Here, with the GIL: the Python error (and the frames it holds, Pipes among them) is
               // dropped on this rank's thread; launch() sees a C++ error and stops the other ranks.
               // A minipipe.Error keeps its C++ message as it was; any other exception says its type
               // and where it was raised ("ValueError: ...\n\nAt:\n  <file>(line): <function>").
               const std::string msg = e.matches(error_type()) ? std::string(py::str(e.value())) : e.what();
               if (e.matches(aborted_type())) throw Aborted(msg);
               throw Error(msg);
             }
           });
  }
  py::list out;
  for (auto& r : results) out.append(r);
  return out;
}

void bind_launch(py::module_& m) {
  py::class_<PyComm>(m, "Communicator", "one rank's view of the group: rank, size and collectives")
      .def_property_readonly("rank", [](const PyComm& c) { return c.get().rank(); })
      .def_property_readonly("size", [](const PyComm& c) { return c.get().size(); })
      .def_property_readonly("backend", [](const PyComm& c) { return std::string(c.get().backend()); })
      .def("barrier", [](const PyComm& c) {
        Communicator& comm = c.get();
        py::gil_scoped_release release;
        comm.barrier();
      })
      .def("all_reduce", [](const PyComm& c, const Tensor& t, const std::string& op) {
        MP_CHECK(op == "sum" || op == "avg", "all_reduce: op must be 'sum' or 'avg', got '", op, "'");
        Communicator& comm = c.get();
        py::gil_scoped_release release;
        comm.all_reduce(t, op == "sum" ? ReduceOp::Sum : ReduceOp::Avg);
      }, py::arg("tensor"), py::arg("op") = "sum", "in place; rank 0's value added first, so every rank gets the same bits")
      .def("broadcast", [](const PyComm& c, const Tensor& t, int root) {
        Communicator& comm = c.get();
        py::gil_scoped_release release;
        comm.broadcast(t, root);
      }, py::arg("tensor"), py::arg("root"));

  py::class_<PyRankContext>(m, "RankContext", "what launch() passes to each rank's function")
      .def_readonly("comm", &PyRankContext::comm)
      .def_property_readonly("rank", [](const PyRankContext& c) { return c.comm.get().rank(); })
      .def_readonly("threads", &PyRankContext::threads, "intra-op threads of this rank")
      .def_readonly("ranks_here", &PyRankContext::ranks_here)
      .def_readonly("cores", &PyRankContext::cores)
      .def_readonly("budget", &PyRankContext::budget)
      .def_property_readonly("memory_live", [](const PyRankContext& c) { return c.memory->live(); },
                             "bytes of tensors this rank allocated and still holds")
      .def_property_readonly("memory_peak", [](const PyRankContext& c) { return c.memory->peak(); });

  m.def("launch", &launch_ranks, py::arg("fn"), py::arg("ranks") = 1, py::arg("threads_per_rank") = 0,
        py::arg("timeout_s") = 300.0,
        "Run fn(ctx) on every rank, each a thread of this process (the `local` communicator); returns their "
        "results by rank. When one rank raises, the others are stopped and minipipe.Error('rank r: ...') is "
        "raised. threads_per_rank 0: this machine's cores / ranks.");
}

void bind_pipe_class(py::module_& m) {
  py::class_<PyPipe>(m, "Pipe",
                     "The pipeline API (parallel/pipe.h): every rank builds a Pipe over the same model with the same "
                     "options inside launch(); each keeps its own stages. Collective calls: Pipe(), train_step, "
                     "predict, evaluate, clip_grad_norm_, save, load, gather.")
      .def(py::init([](std::shared_ptr<nn::Sequential> model, const PyComm& comm, int stages, int microbatches,
                       std::string schedule, int virtual_chunks, const std::string& checkpoint, std::string partition,
                       std::optional<Tensor> profile_sample, uint64_t seed, const py::object& loss,
                       std::vector<int> stage_replicas, int window, bool weight_stashing, bool vertical_sync,
                       bool async_sends) {
             PipeOptions o;
             o.stages = stages;
             o.microbatches = microbatches;
             o.schedule = std::move(schedule);
             o.virtual_chunks = virtual_chunks;
             o.checkpoint = parse_checkpoint(checkpoint);
             o.partition = std::move(partition);
             if (profile_sample) o.profile_sample = *profile_sample;
             o.seed = seed;
             o.loss = loss_of(loss);
             o.stage_replicas = std::move(stage_replicas);
             o.window = window;
             o.weight_stashing = weight_stashing;
             o.vertical_sync = vertical_sync;
             o.async_sends = async_sends;
             Communicator& c = comm.get();
             py::gil_scoped_release release;
             return PyPipe{std::make_unique<Pipe>(std::move(model), c, std::move(o)), comm.alive};
           }),
           py::arg("model"), py::arg("comm"), py::arg("stages") = 1, py::arg("microbatches") = 1,
           py::arg("schedule") = "1f1b", py::arg("virtual_chunks") = 1, py::arg("checkpoint") = "never",
           py::arg("partition") = "uniform", py::arg("profile_sample") = py::none(), py::arg("seed") = 0,
           py::arg("loss") = "cross_entropy", py::arg("stage_replicas") = std::vector<int>{}, py::arg("window") = 0,
           py::arg("weight_stashing") = true, py::arg("vertical_sync") = false, py::arg("async_sends") = true,
           "schedule: gpipe, 1f1b, interleaved, zb-h1, zb-h2, or the asynchronous pipedream and 2bw (give them the "
           "optimizer with set_optimizer); checkpoint: never, except_last, always; partition: uniform, params or "
           "time; loss: 'cross_entropy', 'gpt_loss' or a callable (output, targets) -> Tensor; window (2bw), "
           "weight_stashing and vertical_sync (pipedream): parallel/weight_versions.h")
      .def("set_optimizer", [](const PyPipe& p, optim::Optimizer& opt) { p.get().set_optimizer(opt); },
           py::arg("optimizer"), py::keep_alive<1, 2>(),
           "pipedream / 2bw: the optimizer (over exactly parameters()) that train_step steps inside the pipeline")
      .def_property_readonly("asynchronous", [](const PyPipe& p) { return p.get().asynchronous(); })
      .def_property_readonly("updates", [](const PyPipe& p) { return p.get().updates(); },
                             "optimizer steps each stage has made (pipedream / 2bw)")
      .def_property_readonly("peak_weight_versions", [](const PyPipe& p) { return p.get().peak_weight_versions(); },
                             "pipedream / 2bw: the most weight versions this rank held at once")
      .def("train_step", [](const PyPipe& p, const Tensor& x, const Tensor& y, int64_t first_row) {
        Pipe& pipe = p.get();
        py::gil_scoped_release release;
        return pipe.train_step(x, y, first_row);
      }, py::arg("inputs"), py::arg("targets"), py::arg("first_row") = 0,
         "one step over the batch's M micro-batches: the mean loss on every rank; then step the optimizer")
      .def("predict", [](const PyPipe& p, const Tensor& x) -> std::optional<Tensor> {
        Pipe& pipe = p.get();
        Tensor out;
        {
          py::gil_scoped_release release;
          out = pipe.predict(x);
        }
        if (!out.defined()) return std::nullopt;
        return out;
      }, py::arg("inputs"), "the output on the last stage's rank, None elsewhere (eval mode, no graph)")
      .def("evaluate", [](const PyPipe& p, const Tensor& x, const Tensor& y, const py::object& metric) {
        Pipe& pipe = p.get();
        Metric fn = metric_of(metric);
        py::gil_scoped_release release;
        return pipe.evaluate(x, y, fn);
      }, py::arg("inputs"), py::arg("targets"), py::arg("metric") = "correct",
         "sum over micro-batches of metric(output, targets), on every rank; 'correct': argmax(-1) == targets")
      .def("clip_grad_norm_", [](const PyPipe& p, double max_norm) {
        Pipe& pipe = p.get();
        py::gil_scoped_release release;
        return pipe.clip_grad_norm_(max_norm);
      }, py::arg("max_norm"))
      .def("save", [](const PyPipe& p, const std::string& path) {
        Pipe& pipe = p.get();
        py::gil_scoped_release release;
        pipe.save(path);
      }, py::arg("path"), "safetensors, the unpipelined model's names, written by rank 0")
      .def("load", [](const PyPipe& p, const std::string& path) {
        Pipe& pipe = p.get();
        py::gil_scoped_release release;
        pipe.load(path);
      }, py::arg("path"))
      .def("gather", [](const PyPipe& p) {
        Pipe& pipe = p.get();
        py::gil_scoped_release release;
        pipe.gather();
      }, "copy every rank's parameters into rank 0's model")
      .def("zero_grad", [](const PyPipe& p) { p.get().zero_grad(); })
      .def("train", [](const PyPipe& p, bool on) { p.get().train(on); }, py::arg("mode") = true)
      .def("eval", [](const PyPipe& p) { p.get().eval(); })
      .def("parameters", [](const PyPipe& p) { return p.get().parameters(); }, "this rank's, for its optimizer")
      .def("local_layers", [](const PyPipe& p) { return p.get().local_layers(); })
      .def_property_readonly("rank", [](const PyPipe& p) { return p.get().rank(); })
      .def_property_readonly("stages", [](const PyPipe& p) { return p.get().stages(); })
      .def_property_readonly("microbatches", [](const PyPipe& p) { return p.get().microbatches(); })
      .def_property_readonly("num_chunks", [](const PyPipe& p) { return p.get().num_chunks(); })
      .def_property_readonly("last_rank", [](const PyPipe& p) { return p.get().last_rank(); })
      .def_property_readonly("is_last_stage", [](const PyPipe& p) { return p.get().is_last_stage(); })
      .def_property_readonly("step", [](const PyPipe& p) { return p.get().step(); })
      .def_property_readonly("program", [](const PyPipe& p) { return p.get().program(); },
                             "the lowered training program")
      .def_property_readonly("partition", [](const PyPipe& p) { return p.get().partition(); })
      .def_property_readonly("peak_stash_bytes", [](const PyPipe& p) { return p.get().peak_stash_bytes(); })
      .def("describe", [](const PyPipe& p) { return p.get().describe(); }, "the partition table and the schedule");
}

}  // namespace

void bind_pipe(py::module_& m) {
  py::module_ par = m.attr("parallel").cast<py::module_>();  // made by bind_schedules
  bind_launch(par);
  bind_pipe_class(par);
}

}  // namespace minipipe::python
