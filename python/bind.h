// Shared by the binding files of the Python module (python/*.cpp): the entry point of each area and
// the conversions they all use (dtypes, shapes). module.cpp puts the areas together into `minipipe`.
#pragma once

#include <pybind11/pybind11.h>

#include "tensor/tensor.h"

namespace minipipe::python {

namespace py = pybind11;

void bind_tensor(py::module_& m);     // Tensor, NumPy, factories, differentiable ops (bind_tensor.cpp)
void bind_nn(py::module_& m);         // minipipe.nn: layers, GPT, data; minipipe.optim (bind_nn.cpp)
void bind_schedules(py::module_& m);  // minipipe.parallel: schedules, simulator, partitioner (bind_schedules.cpp)
void bind_pipe(py::module_& m);       // minipipe.parallel: launch, Communicator, Pipe (bind_pipe.cpp)

// "float32", "float64", "int64", or a NumPy dtype / scalar type (np.float32); anything else is a
// TypeError naming it.
DType to_dtype(py::handle obj);
// An int, or a sequence of ints: (2, 3), [2, 3].
Shape to_shape(py::handle obj);
py::tuple shape_tuple(const Shape& s);

// The Python exception classes of minipipe::Error and of parallel::Aborted (a rank stopped
// because another failed), its subclass.
py::handle error_type();
py::handle aborted_type();

}  // namespace minipipe::python
