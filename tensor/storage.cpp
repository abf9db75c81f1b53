// CPU allocation for Storage. The CUDA allocator arrives with the CUDA backend; until then a
// CUDA tensor is a clear error rather than a crash.
#include "tensor/storage.h"

#include <cstdlib>
#include <new>

namespace minipipe {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  MP_CHECK(device.is_cpu(), "cannot allocate ", nbytes, " bytes on ", device.str(),
           ": this build of minipipe has no CUDA allocator yet");
  // aligned_alloc needs a size that is a multiple of the alignment; 64 bytes = one cache line
  // and one AVX-512 register.
  size_t rounded = (nbytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!data_) throw std::bad_alloc();
}

Storage::~Storage() { std::free(data_); }

}  // namespace minipipe
