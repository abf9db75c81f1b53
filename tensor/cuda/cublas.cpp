// Loading cuBLAS at run time (cublas.h says why): dlopen the library the toolkit shipped, look up
// the few functions the backend calls, keep them for the life of the process.
#include "tensor/cuda/cublas.h"

#include <mutex>
#include <string>

#include "tensor/cuda/shared_library.h"

namespace minipipe::cuda {

const CublasApi& cublas() {
  static CublasApi api;
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef MINIPIPE_CUDA_LIBRARY_DIR  // the toolkit minipipe was built with, when the loader's path lacks it
    const std::string dir = MINIPIPE_CUDA_LIBRARY_DIR;
#else
    const std::string dir;
#endif
    const SharedLibrary lib("cuBLAS", "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR), dir,
                            "is the CUDA toolkit's lib64 on the library path?");
    lib.find("cublasCreate_v2", api.create);
    lib.find("cublasSetStream_v2", api.set_stream);
    lib.find("cublasSetWorkspace_v2", api.set_workspace);
    lib.find("cublasGemmStridedBatchedEx", api.gemm_strided_batched_ex);
    lib.find("cublasGetStatusName", api.status_name);
    lib.find("cublasGetStatusString", api.status_string);
  });
  return api;
}

}  // namespace minipipe::cuda
