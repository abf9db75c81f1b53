// The Python module `minipipe` (pybind11): C++ errors become Python exceptions, then each area binds
// its part (bind.h). Build: cmake --build build (MINIPIPE_PYTHON); use: PYTHONPATH=build/python.
#include "parallel/communicator.h"
#include "python/bind.h"

namespace minipipe::python {

namespace {
// Set once at import and never freed (a static py::object would drop its reference after the
// interpreter has gone). Translators are plain function pointers: they find the classes here.
py::exception<Error>* g_error = nullptr;
py::exception<parallel::Aborted>* g_aborted = nullptr;
}  // namespace

void register_errors(py::module_& m) {
  // Translators registered later are tried first: Aborted, a subclass, before Error.
  g_error = new py::exception<Error>(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      (*g_error)(e.what());
    }
  });
  g_aborted = new py::exception<parallel::Aborted>(m, "Aborted", g_error->ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const parallel::Aborted& e) {
      (*g_aborted)(e.what());
    }
  });
}

py::handle error_type() { return *g_error; }
py::handle aborted_type() { return *g_aborted; }

}  // namespace minipipe::python

PYBIND11_MODULE(minipipe, m) {
  namespace py = pybind11;
  using namespace minipipe;
  m.doc() =
      "minipipe: an educational deep-learning framework centred on pipeline parallelism (C++, with these "
      "bindings). Tensors with autograd and NumPy interop; minipipe.nn (layers, GPT, data); minipipe.optim; "
      "minipipe.parallel (schedules, simulator, partitioner, launch, Pipe). See docs/python.md.";
  // MP_CHECK's minipipe::Error -> minipipe.Error (a RuntimeError) carrying the C++ message;
  // parallel::Aborted -> minipipe.Aborted, its subclass.
  python::register_errors(m);

  python::bind_tensor(m);
  python::bind_nn(m);
  python::bind_schedules(m);
  python::bind_pipe(m);
}
