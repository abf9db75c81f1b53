// Element types and devices: what every tensor carries besides its shape. Float32 and float64
// on the CPU (float64 so gradient checks are exact enough), int64 for indices and labels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tensor/error.h"

namespace minipipe {

enum class DType : uint8_t { Float32, Float64, Int64 };

inline size_t element_size(DType t) { return t == DType::Float32 ? 4 : 8; }
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
  }
  return "?";
}
inline bool is_floating(DType t) { return t != DType::Int64; }

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }

enum class DeviceType : uint8_t { CPU, CUDA };

// A device: the CPU, or CUDA device `index`. Every tensor has one and every op dispatches on it.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

}  // namespace minipipe

// Run `__VA_ARGS__` with `scalar_t` bound to the C++ type of `dtype`.
#define MP_DISPATCH_FLOAT(dtype, op_name, ...)                                        \
  [&] {                                                                               \
    switch (dtype) {                                                                  \
      case ::minipipe::DType::Float32: { using scalar_t = float; return __VA_ARGS__(); }  \
      case ::minipipe::DType::Float64: { using scalar_t = double; return __VA_ARGS__(); } \
      default: MP_CHECK(false, op_name, ": expected a floating-point tensor, got ",      \
                        ::minipipe::dtype_name(dtype));                              \
    }                                                                                 \
    MP_INTERNAL_ASSERT(false, "unreachable");                                         \
  }()

#define MP_DISPATCH_ALL(dtype, op_name, ...)                                          \
  [&] {                                                                               \
    switch (dtype) {                                                                  \
      case ::minipipe::DType::Float32: { using scalar_t = float; return __VA_ARGS__(); }  \
      case ::minipipe::DType::Float64: { using scalar_t = double; return __VA_ARGS__(); } \
      case ::minipipe::DType::Int64: { using scalar_t = int64_t; return __VA_ARGS__(); }  \
    }                                                                                 \
    MP_INTERNAL_ASSERT(false, "unreachable");                                         \
  }()
