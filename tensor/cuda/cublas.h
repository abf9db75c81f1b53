// cuBLAS, loaded on first use (dlopen) instead of linked: every program that links minipipe — each
// of the ~50 test binaries ctest starts ~1300 times — would otherwise map libcublas and libcublasLt
// (hundreds of MiB) at start-up: 0.18 s per process here against 0.01 s, minutes per test run. A
// program that never multiplies on a GPU never loads it. Internal to tensor/cuda/.
#pragma once

#include <cublas_v2.h>

#include "tensor/error.h"

namespace minipipe::cuda {

// The cuBLAS entry points the backend calls.
struct CublasApi {
  cublasStatus_t (*create)(cublasHandle_t*);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*set_workspace)(cublasHandle_t, void*, size_t);
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long, const void*,
                                            cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                            long long, int, cublasComputeType_t, cublasGemmAlgo_t);
  const char* (*status_name)(cublasStatus_t);
  const char* (*status_string)(cublasStatus_t);
};

// Loads libcublas.so.<major of the toolkit we compiled against> once (thread-safe); an Error naming
// the library and dlerror() if it cannot.
const CublasApi& cublas();

}  // namespace minipipe::cuda

#define CUBLAS_CHECK(call)                                                                      \
  do {                                                                                          \
    cublasStatus_t st_ = (call);                                                                \
    MP_CHECK(st_ == CUBLAS_STATUS_SUCCESS, #call, " failed at ", __FILE__, ":", __LINE__, ": ", \
             ::minipipe::cuda::cublas().status_name(st_), ": ",                                 \
             ::minipipe::cuda::cublas().status_string(st_));                                    \
  } while (0)
