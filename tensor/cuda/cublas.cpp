// Loading cuBLAS at run time (cublas.h says why): dlopen the library the toolkit shipped, look up
// the few functions the backend calls, keep them for the life of the process.
#include "tensor/cuda/cublas.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace minipipe::cuda {

namespace {

template <typename Fn>
void find(void* lib, const std::string& lib_name, const char* symbol, Fn& out) {
  void* p = dlsym(lib, symbol);
  MP_CHECK(p != nullptr, "cuBLAS: ", lib_name, " has no symbol ", symbol, " (a cuBLAS older than the toolkit minipipe ",
           "was built with?)");
  out = reinterpret_cast<Fn>(p);
}

}  // namespace

const CublasApi& cublas() {
  static CublasApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef MINIPIPE_CUDA_LIBRARY_DIR  // the toolkit minipipe was built with, when the loader's path lacks it
    if (!lib) lib = dlopen((std::string(MINIPIPE_CUDA_LIBRARY_DIR) + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
    MP_CHECK(lib != nullptr, "cuBLAS: cannot load ", name, ": ", dlerror(),
             " (is the CUDA toolkit's lib64 on the library path?)");
    find(lib, name, "cublasCreate_v2", api.create);
    find(lib, name, "cublasSetStream_v2", api.set_stream);
    find(lib, name, "cublasSetWorkspace_v2", api.set_workspace);
    find(lib, name, "cublasGemmStridedBatchedEx", api.gemm_strided_batched_ex);
    find(lib, name, "cublasGetStatusName", api.status_name);
    find(lib, name, "cublasGetStatusString", api.status_string);
  });
  return api;
}

}  // namespace minipipe::cuda
