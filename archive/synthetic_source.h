// SyntheticSource: a ByteSource of `size` deterministic bytes generated on the
// fly (no memory grows with the size), for tests and benchmarks.
//
// The data is "half compressible": in every 4 KiB block, the first half is
// pseudo-random and the second half repeats a short record, so gzip shrinks
// it to roughly half. The same seed always yields the same bytes.
//
// Threading: one instance per thread.
#ifndef SNAPSHOT_AGENT_ARCHIVE_SYNTHETIC_SOURCE_H_
#define SNAPSHOT_AGENT_ARCHIVE_SYNTHETIC_SOURCE_H_

#include <cstdint>
#include <cstring>

#include "base/io.h"

namespace snapshot {

class SyntheticSource : public ByteSource {
 public:
  SyntheticSource(uint64_t size, uint64_t seed) : size_(size), seed_(seed) {}

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, size_ - pos_));
    for (size_t i = 0; i < k;) {
      uint64_t block = (pos_ + i) / kBlock;
      size_t in_block = static_cast<size_t>((pos_ + i) % kBlock);
      size_t take = std::min(k - i, kBlock - in_block);
      for (size_t j = 0; j < take; ++j) {
        size_t at = in_block + j;
        buf[i + j] = at < kBlock / 2 ? RandomByte(block, at)
                                     : kRecord[at % (sizeof(kRecord) - 1)];
      }
      i += take;
    }
    pos_ += k;
    return k;
  }

  uint64_t size() const { return size_; }

 private:
  static constexpr size_t kBlock = 4096;
  static constexpr char kRecord[] = "{\"key\":\"user/0042\",\"value\":\"ok\"}\n";

  char RandomByte(uint64_t block, size_t at) const {
    // splitmix64 of (seed, block, word); 8 bytes per word.
    uint64_t z = seed_ * 0x9e3779b97f4a7c15ull + block * 0xbf58476d1ce4e5b9ull +
                 (at / 8) * 0x94d049bb133111ebull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<char>(z >> (8 * (at % 8)));
  }

  uint64_t size_;
  uint64_t seed_;
  uint64_t pos_ = 0;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_SYNTHETIC_SOURCE_H_
