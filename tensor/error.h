// Errors and checks: MP_CHECK for anything a user can cause (throws minipipe::Error with a
// message built only on failure), MP_INTERNAL_ASSERT for invariants of minipipe itself.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace minipipe {

// The one exception type minipipe throws for bad input; programs print what() and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_error(const std::string& msg);
[[noreturn]] void throw_internal(const char* cond, const char* file, int line,
                                 const std::string& msg);
}  // namespace detail

}  // namespace minipipe

#define MP_CHECK(cond, ...)                                              \
  do {                                                                   \
    if (!(cond)) [[unlikely]]                                            \
      ::minipipe::detail::throw_error(::minipipe::detail::str_cat(__VA_ARGS__)); \
  } while (0)

#define MP_INTERNAL_ASSERT(cond, ...)                                              \
  do {                                                                             \
    if (!(cond)) [[unlikely]]                                                      \
      ::minipipe::detail::throw_internal(#cond, __FILE__, __LINE__,                \
                                         ::minipipe::detail::str_cat(__VA_ARGS__)); \
  } while (0)
