// ISA-L for the rest of the project: raw deflate (RFC 1951) in one call,
// with igzip — the quick compression of the archive's fast mode and of the
// Raft log's restore chunks — a quick incompressibility check, and CRC-64.
//
// Threading: a FastDeflater is used by one thread at a time (it owns
// scratch space); FastDeflater::SampledEntropy, InflateRaw and Crc64 are
// thread-safe. Errors: Deflate returns 0 when
// the output does not fit; InflateRaw returns false for corrupt input or a
// size other than the one given.
#ifndef SNAPSHOT_AGENT_BASE_DEFLATE_H_
#define SNAPSHOT_AGENT_BASE_DEFLATE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace snapshot {

class FastDeflater {
 public:
  // The size of piece LooksIncompressible judges best.
  static constexpr size_t kPiece = 16 << 10;

  FastDeflater();
  // Compresses `in` (ISA-L level 1) into out[0, cap): returns the length,
  // or 0 when it does not fit (or `in` is 4 GiB or more).
  size_t Deflate(absl::string_view in, char* out, size_t cap);

  // Whether deflate would not shrink `piece` (up to kPiece bytes) by 3%:
  // its sampled byte entropy is near 8 bits (random-looking: compressed or
  // encrypted data) and it holds no long repeats. At memory speed — a tenth
  // of a trial deflate's cost. Pieces under 256 bytes count as compressible.
  bool LooksIncompressible(absl::string_view piece);

  // The first of LooksIncompressible's two tests: the byte entropy of
  // `piece`, in bits per byte, estimated from a sample of it. It costs little
  // but cache misses, so a caller that has just written the piece may take it
  // then, while the bytes are in its cache, and hand it to Classify.
  static double SampledEntropy(absl::string_view piece);

  // A stretch of bytes with one verdict.
  struct Run {
    size_t start = 0, size = 0;
    bool incompressible = false;
  };
  // Splits `data` into runs of incompressible and compressible bytes: each
  // kPiece is judged by LooksIncompressible, and a compressible piece next
  // to an incompressible one is judged again by its kPiece / 4 quarters,
  // from the incompressible side(s) up to the first compressible quarter, so
  // that where random bytes begin or end inside a piece at most a quarter
  // of them is compressed (random bytes cost a deflater several times more
  // than text, and its reader too). Empty data gives no run. `entropy`, when
  // given, holds SampledEntropy of each kPiece of `data` (the last one as
  // long as it is), taken by the caller; otherwise Classify samples them.
  void Classify(absl::string_view data, std::vector<Run>* runs,
                const std::vector<double>* entropy = nullptr);

 private:
  bool LooksIncompressible(absl::string_view piece, double entropy);
  bool HasRepeats(const uint8_t* p, size_t n);

  std::string level_buf_;
  std::vector<uint16_t> table_;  // HasRepeats' hash table
  std::vector<char> verdicts_;   // Classify's, per piece
};

// Inflates raw deflate `in` into out[0, size); true only when `in` is one
// complete deflate stream of exactly `size` bytes.
bool InflateRaw(absl::string_view in, char* out, size_t size);

// CRC-64/ECMA (reflected) of `data`, continuing from `crc` (0 to start):
// ISA-L's carry-less multiply version, several GB/s. A check against
// accidents (bugs, flipped bits), not against an adversary.
uint64_t Crc64(uint64_t crc, absl::string_view data);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_DEFLATE_H_
