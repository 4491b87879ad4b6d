#include "raft/libraft_crc32.h"

#include <isa-l/crc.h>

#include <cstdint>

// Both names are resolved by the linker flag `-Wl,--wrap=byteCrc32` that comes
// with @system//:raft: libraft's calls to byteCrc32 reach __wrap_byteCrc32,
// and __real_byteCrc32 is libraft's own function.
extern "C" unsigned __real_byteCrc32(const void* buf, std::size_t size,
                                     unsigned init);
extern "C" unsigned __wrap_byteCrc32(const void* buf, std::size_t size,
                                     unsigned init);

namespace snapshot {
namespace {

// ISA-L's crc32_ieee is the same CRC with the initial value and the result
// inverted (CRC-32/BZIP2); libraft's has neither inversion.
unsigned IsalCrc32(const void* data, std::size_t size, unsigned init) {
  return ~crc32_ieee(~init, static_cast<const unsigned char*>(data), size);
}

bool SameAsLibraft() {
  unsigned char buf[4096 + 64];
  std::uint32_t x = 0x9e3779b9u;
  for (unsigned char& b : buf) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<unsigned char>(x >> 24);
  }
  const std::size_t sizes[] = {0, 1, 3, 15, 16, 17, 63, 64, 255, 1000, 4096};
  const unsigned inits[] = {0u, 1u, 0x80000000u, 0xffffffffu, 0x5f1813beu};
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t size : sizes) {
      for (unsigned init : inits) {
        if (IsalCrc32(buf + offset, size, init) !=
            __real_byteCrc32(buf + offset, size, init)) {
          return false;
        }
      }
    }
  }
  return true;
}

}  // namespace

bool LibraftCrc32IsAccelerated() {
  static const bool same = SameAsLibraft();
  return same;
}

unsigned LibraftCrc32(const void* data, std::size_t size, unsigned init) {
  if (LibraftCrc32IsAccelerated()) return IsalCrc32(data, size, init);
  return __real_byteCrc32(data, size, init);
}

unsigned LibraftCrc32Reference(const void* data, std::size_t size,
                               unsigned init) {
  return __real_byteCrc32(data, size, init);
}

}  // namespace snapshot

extern "C" unsigned __wrap_byteCrc32(const void* buf, std::size_t size,
                                     unsigned init) {
  return snapshot::LibraftCrc32(buf, size, init);
}
