// Out-of-line throw helpers for MP_CHECK / MP_INTERNAL_ASSERT (keeps the macros' call sites small).
#include "tensor/error.h"

namespace minipipe::detail {

void throw_error(const std::string& msg) { throw Error(msg); }

void throw_internal(const char* cond, const char* file, int line, const std::string& msg) {
  throw Error(str_cat("internal error (a minipipe bug): ", cond, " failed at ", file, ":", line,
                      msg.empty() ? "" : ": ", msg));
}

}  // namespace minipipe::detail
