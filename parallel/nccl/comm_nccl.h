// The `nccl` communicator: one rank per GPU, device tensors moved by NVIDIA's NCCL, either one
// process per GPU under mpirun (bootstrapped over the `mpi` communicator) or one process driving
// several GPUs with a thread per GPU (bootstrapped over `local`). CPU tensors — the pipeline's
// configuration checks, clock sync, loss totals — travel over that host communicator, device tensors
// over NCCL; launch() (launch.h, --comm nccl) builds either. Built when CMake finds CUDA and NCCL;
// otherwise asking for it is a clear error. How it maps the Communicator contract onto NCCL is in
// comm_nccl.cpp's opening comment and docs/cuda.md.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace minipipe::parallel {

// Whether this build has the NCCL backend.
bool nccl_is_built();

// Collective over `host`: every rank of it calls this with its own GPU (distinct GPUs: NCCL refuses
// two ranks on one). The result has host's ranks and size, moves device tensors on cuda:`device`
// with NCCL and everything else through `host`, which must outlive it. Timeout: host's.
std::unique_ptr<Communicator> make_nccl(Communicator& host, int device);

}  // namespace minipipe::parallel
