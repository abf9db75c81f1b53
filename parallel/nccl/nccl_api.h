// NCCL, loaded on first use (dlopen) instead of linked, for the reason cuBLAS is (tensor/cuda/cublas.h):
// libnccl.so is 218 MB, and every program linking minipipe would map it at start-up; a program that
// never makes a `nccl` communicator never loads it. Internal to parallel/nccl/.
#pragma once

#include <nccl.h>

#include "tensor/error.h"

namespace minipipe::parallel::nccl {

// The NCCL entry points the communicator calls.
struct NcclApi {
  ncclResult_t (*get_version)(int*);
  ncclResult_t (*get_unique_id)(ncclUniqueId*);
  ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*comm_abort)(ncclComm_t);
  ncclResult_t (*comm_get_async_error)(ncclComm_t, ncclResult_t*);
  const char* (*get_error_string)(ncclResult_t);
  const char* (*get_last_error)(ncclComm_t);
  ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
  ncclResult_t (*broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*send)(const void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*recv)(void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*group_start)();
  ncclResult_t (*group_end)();
};

// Loads libnccl.so.<major of the headers we compiled against> once (thread-safe): from the loader's
// path, else from the CUDA toolkit's lib64. An Error naming the library and dlerror() if neither has it.
const NcclApi& api();

}  // namespace minipipe::parallel::nccl

// Wraps an NCCL call: a failure is an Error naming the call, file, line and NCCL's error string
// (and its last-error text, which says which peer or resource failed).
#define NCCL_CHECK(call)                                                                             \
  do {                                                                                               \
    const ncclResult_t nccl_rc_ = (call);                                                            \
    MP_CHECK(nccl_rc_ == ncclSuccess, #call, " failed at ", __FILE__, ":", __LINE__, ": ",          \
             ::minipipe::parallel::nccl::api().get_error_string(nccl_rc_), " (",                      \
             ::minipipe::parallel::nccl::api().get_last_error(nullptr), ")");                        \
  } while (0)
