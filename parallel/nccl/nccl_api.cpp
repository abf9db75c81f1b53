// Loading NCCL at run time (nccl_api.h says why): dlopen the library, look up the functions the
// communicator calls, keep them for the life of the process. Compiled only in builds with NCCL.
#include "parallel/nccl/nccl_api.h"

#ifdef MINIPIPE_WITH_NCCL

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace minipipe::parallel::nccl {

namespace {

template <typename Fn>
void find(void* lib, const std::string& lib_name, const char* symbol, Fn& out) {
  void* p = dlsym(lib, symbol);
  MP_CHECK(p != nullptr, "NCCL: ", lib_name, " has no symbol ", symbol, " (an NCCL older than the headers minipipe ",
           "was built with, ", NCCL_MAJOR, ".", NCCL_MINOR, "?)");
  out = reinterpret_cast<Fn>(p);
}

}  // namespace

const NcclApi& api() {
  static NcclApi a;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string name = "libnccl.so." + std::to_string(NCCL_MAJOR);
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef MINIPIPE_NCCL_LIBRARY_DIR  // where CMake found it, when the loader's path lacks it
    if (!lib) lib = dlopen((std::string(MINIPIPE_NCCL_LIBRARY_DIR) + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
    MP_CHECK(lib != nullptr, "NCCL: cannot load ", name, ": ", dlerror(),
             " (is the CUDA toolkit's lib64, which ships NCCL, on the library path?)");
    find(lib, name, "ncclGetVersion", a.get_version);
    find(lib, name, "ncclGetUniqueId", a.get_unique_id);
    find(lib, name, "ncclCommInitRank", a.comm_init_rank);
    find(lib, name, "ncclCommDestroy", a.comm_destroy);
    find(lib, name, "ncclCommAbort", a.comm_abort);
    find(lib, name, "ncclCommGetAsyncError", a.comm_get_async_error);
    find(lib, name, "ncclGetErrorString", a.get_error_string);
    find(lib, name, "ncclGetLastError", a.get_last_error);
    find(lib, name, "ncclAllReduce", a.all_reduce);
    find(lib, name, "ncclBroadcast", a.broadcast);
    find(lib, name, "ncclSend", a.send);
    find(lib, name, "ncclRecv", a.recv);
    find(lib, name, "ncclGroupStart", a.group_start);
    find(lib, name, "ncclGroupEnd", a.group_end);
  });
  return a;
}

}  // namespace minipipe::parallel::nccl

#endif  // MINIPIPE_WITH_NCCL
