// Opening a library of the CUDA toolkit at run time (cuBLAS here, NCCL in parallel/nccl/) and
// looking up its functions: what cublas.h says about why, written once. Header-only; CUDA builds.
#pragma once

#include <dlfcn.h>

#include <string>

#include "tensor/error.h"

namespace minipipe::cuda {

// A library opened with dlopen: `file` from the loader's path, else from `fallback_dir` (where the
// build found it; empty for none). `what` names it in errors ("cuBLAS"), `hint` says what to check.
class SharedLibrary {
 public:
  SharedLibrary(std::string what, const std::string& file, const std::string& fallback_dir, const char* hint)
      : what_(std::move(what)), file_(file) {
    handle_ = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_ && !fallback_dir.empty()) handle_ = dlopen((fallback_dir + "/" + file).c_str(), RTLD_NOW | RTLD_LOCAL);
    MP_CHECK(handle_ != nullptr, what_, ": cannot load ", file, ": ", dlerror(), " (", hint, ")");
  }
  // Sets `out` to the function `symbol`; an Error naming both when the library lacks it (older than
  // the headers minipipe was built with).
  template <typename Fn>
  void find(const char* symbol, Fn& out) const {
    void* p = dlsym(handle_, symbol);
    MP_CHECK(p != nullptr, what_, ": ", file_, " has no symbol ", symbol, " (a ", what_,
             " older than the headers minipipe was built with?)");
    out = reinterpret_cast<Fn>(p);
  }

 private:
  std::string what_, file_;
  void* handle_ = nullptr;  // never closed: the functions are used for the life of the process
};

}  // namespace minipipe::cuda
