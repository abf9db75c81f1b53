// Shared by every exercise module: how a blank stub says "not implemented yet", so a student who
// runs exercises/check.sh before writing anything sees which function to write, and where.
#pragma once

#include "tensor/error.h"

// Throws minipipe::Error: "not implemented yet: transpose_view (exercises/01_views/stub.cpp)".
#define EXERCISE_TODO(function, file) \
  MP_CHECK(false, "not implemented yet: ", function, " (write it in exercises/", file, ")")
