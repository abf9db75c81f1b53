// Loading NCCL at run time (nccl_api.h says why): dlopen the library, look up the functions the
// communicator calls, keep them for the life of the process. Compiled only in builds with NCCL.
#ifdef MINIPIPE_WITH_NCCL

#include "parallel/nccl/nccl_api.h"

#include <mutex>
#include <string>

#include "tensor/cuda/shared_library.h"

namespace minipipe::parallel::nccl {

const NcclApi& api() {
  static NcclApi a;
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef MINIPIPE_NCCL_LIBRARY_DIR  // where CMake found it, when the loader's path lacks it
    const std::string dir = MINIPIPE_NCCL_LIBRARY_DIR;
#else
    const std::string dir;
#endif
    const cuda::SharedLibrary lib("NCCL", "libnccl.so." + std::to_string(NCCL_MAJOR), dir,
                                  "is the CUDA toolkit's lib64, which ships NCCL, on the library path?");
    // The version first: an older library lacks some of the symbols below, and a missing symbol
    // would be the error instead of this one. ncclGetLastError came in 2.13 (ncclAvg, which
    // all_reduce's Avg uses, in 2.10).
    lib.find("ncclGetVersion", a.get_version);
    lib.find("ncclGetErrorString", a.get_error_string);
    int version = 0;  // NCCL_VERSION's code: X*1000 + Y*100 + Z up to 2.8, X*10000 + Y*100 + Z after
    const ncclResult_t rc = a.get_version(&version);  // not NCCL_CHECK: it calls api(), still being made
    MP_CHECK(rc == ncclSuccess, "ncclGetVersion failed: ", a.get_error_string(rc));
    const bool old_code = version < 10000;
    MP_CHECK(version >= NCCL_VERSION(2, 13, 0), "NCCL ", old_code ? version / 1000 : version / 10000, ".",
             old_code ? version / 100 % 10 : version / 100 % 100, ".", version % 100,
             " was loaded; minipipe needs 2.13 or newer (ncclGetLastError; it was built against ", NCCL_MAJOR, ".",
             NCCL_MINOR, ")");
    lib.find("ncclGetUniqueId", a.get_unique_id);
    lib.find("ncclCommInitRank", a.comm_init_rank);
    lib.find("ncclCommAbort", a.comm_abort);
    lib.find("ncclCommGetAsyncError", a.comm_get_async_error);
    lib.find("ncclGetLastError", a.get_last_error);
    lib.find("ncclAllReduce", a.all_reduce);
    lib.find("ncclBroadcast", a.broadcast);
    lib.find("ncclSend", a.send);
    lib.find("ncclRecv", a.recv);
    lib.find("ncclGroupStart", a.group_start);
    lib.find("ncclGroupEnd", a.group_end);
  });
  return a;
}

}  // namespace minipipe::parallel::nccl

#endif  // MINIPIPE_WITH_NCCL
