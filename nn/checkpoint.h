// Checkpoint I/O in the safetensors format, so Python tools (safetensors, PyTorch) read our files:
// an 8-byte little-endian header length N, N bytes of JSON header, then the raw little-endian
// data. Names are Module::named_parameters()/named_buffers() dotted names (`2.weight`).
#pragma once

#include <map>
#include <string>

#include "nn/module.h"

namespace minipipe::nn {

using TensorMap = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;  // the header's "__metadata__" (strings only)

// Writes `tensors` (CPU; float32, float64 or int64) to `path` atomically: the bytes go to
// `path.tmp.<pid>`, which is fsync'ed and renamed over `path`; on any failure the temporary file
// is removed and an Error thrown, so `path` holds either the old file or the complete new one.
void save_tensors(const TensorMap& tensors, const std::string& path, const Metadata& metadata = {});

// Reads and validates a whole file (header length, JSON, dtypes, shapes, offsets covering the
// data exactly, file size) and returns fresh tensors. `metadata`, if given, receives
// "__metadata__".
TensorMap load_tensors(const std::string& path, Metadata* metadata = nullptr);

// The module's parameters and (defined) buffers under their dotted names. Metadata gets
// "format": "pt" unless given, which PyTorch-side tools (e.g. transformers) expect.
void save(const Module& module, const std::string& path, Metadata metadata = {});

// Loads `path` into the module's existing tensors, in place (so optimizers' handles stay valid).
// Everything is checked first — file integrity, then every tensor: missing, unexpected, shape,
// dtype — and one Error lists all the problems; on any error the module is left unchanged.
void load(Module& module, const std::string& path);

}  // namespace minipipe::nn
