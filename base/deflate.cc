#include "base/deflate.h"

#include <isa-l/crc64.h>
#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace snapshot {

namespace {

constexpr double kRandomEntropy = 7.8;  // bits per byte
constexpr int kHashBits = 12;
constexpr uint16_t kEmpty = 0xffff;

uint32_t Hash(const uint8_t* q) {
  uint64_t v;
  memcpy(&v, q, 8);
  return static_cast<uint32_t>((v * 0x9e3779b97f4a7c15ull) >> (64 - kHashBits));
}

// The byte entropy of a piece, in bits per byte, estimated from a sample:
// 64 bytes of every 512 (2 KiB of a 16 KiB piece), counted in four
// histograms to keep the increments independent. The sample's estimate runs
// about 0.09 bit low on random bytes (7.91), clear of kRandomEntropy. A
// piece of half kPiece or less is sampled more densely (64 of every 128
// bytes), so that a 4 KiB quarter gives a sample as large.
constexpr size_t kSampleRun = 64, kSampleStride = 512;
constexpr size_t kMaxSample =
    std::max(FastDeflater::kPiece / kSampleStride, FastDeflater::kPiece / 2 / (2 * kSampleRun)) *
    kSampleRun;

// c · log2(c) for every count a sample can hold: no log2 per piece.
const double* CountLogTable() {
  static const double* table = [] {
    double* t = new double[kMaxSample + 1];
    t[0] = 0;
    for (size_t c = 1; c <= kMaxSample; ++c) t[c] = c * std::log2(static_cast<double>(c));
    return t;
  }();
  return table;
}

}  // namespace

FastDeflater::FastDeflater()
    : level_buf_(ISAL_DEF_LVL1_DEFAULT, '\0'), table_(size_t{1} << kHashBits) {}

double FastDeflater::SampledEntropy(absl::string_view piece) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(piece.data());
  const size_t n = piece.size();
  uint16_t h[4][256] = {};  // a sample holds at most kMaxSample bytes
  size_t m = 0;
  const size_t stride = n > kPiece / 2 ? kSampleStride : 2 * kSampleRun;
  for (size_t i = 0; i + kSampleRun <= n; i += stride) {
    const uint8_t* q = p + i;
    // When the piece is not in this core's cache (written by another
    // thread), the sample's lines are misses that the prefetcher does not
    // foresee at this stride: ask for the lines four runs ahead, so that
    // several are in flight at once.
    if (i + 4 * stride < n) __builtin_prefetch(q + 4 * stride);
    for (size_t j = 0; j < kSampleRun; j += 4) {
      ++h[0][q[j]];
      ++h[1][q[j + 1]];
      ++h[2][q[j + 2]];
      ++h[3][q[j + 3]];
    }
    m += kSampleRun;
  }
  if (m == 0) return 0;  // a piece under 64 bytes: compress it
  // H = log2(m) - (1/m) Σ c·log2(c)
  const double* t = CountLogTable();
  double sum = 0;
  for (int b = 0; b < 256; ++b) sum += t[h[0][b] + h[1][b] + h[2][b] + h[3][b]];
  return std::log2(static_cast<double>(m)) - sum / m;
}

bool FastDeflater::LooksIncompressible(absl::string_view piece) {
  return LooksIncompressible(piece, SampledEntropy(piece));
}

bool FastDeflater::LooksIncompressible(absl::string_view piece, double entropy) {
  if (entropy < kRandomEntropy) return false;
  // Looks random; but random bytes that repeat have high byte entropy and
  // still compress.
  return !HasRepeats(reinterpret_cast<const uint8_t*>(piece.data()), piece.size());
}

void FastDeflater::Classify(absl::string_view data, std::vector<Run>* runs,
                            const std::vector<double>* entropy) {
  runs->clear();
  const size_t pieces = (data.size() + kPiece - 1) / kPiece;
  if (entropy != nullptr && entropy->size() != pieces) entropy = nullptr;
  verdicts_.resize(pieces);
  for (size_t i = 0; i < pieces; ++i) {
    const absl::string_view piece = data.substr(i * kPiece, kPiece);
    verdicts_[i] = entropy != nullptr ? LooksIncompressible(piece, (*entropy)[i])
                                      : LooksIncompressible(piece);
  }
  auto add = [runs](size_t start, size_t size, bool incompressible) {
    if (!runs->empty() && runs->back().incompressible == incompressible) {
      runs->back().size += size;
    } else {
      runs->push_back(Run{start, size, incompressible});
    }
  };
  constexpr size_t kQuarter = kPiece / 4;
  for (size_t i = 0; i < pieces; ++i) {
    const size_t off = i * kPiece, n = std::min(kPiece, data.size() - off);
    const bool edge = !verdicts_[i] && ((i > 0 && verdicts_[i - 1]) ||
                                        (i + 1 < pieces && verdicts_[i + 1]));
    if (!edge) {
      add(off, n, verdicts_[i]);
      continue;
    }
    // The random bytes run in from the random side(s): judge quarters from
    // there until the first compressible one; the rest of the piece keeps
    // its verdict.
    const size_t quarters = (n + kQuarter - 1) / kQuarter;
    auto quarter = [&](size_t k) { return data.substr(off + k * kQuarter, kQuarter); };
    size_t lo = 0, hi = quarters;  // quarters [lo, hi) are compressible
    if (i > 0 && verdicts_[i - 1]) {
      while (lo < hi && LooksIncompressible(quarter(lo))) ++lo;
    }
    if (i + 1 < pieces && verdicts_[i + 1]) {
      while (hi > lo && LooksIncompressible(quarter(hi - 1))) --hi;
    }
    const size_t a = std::min(n, lo * kQuarter), b = std::min(n, hi * kQuarter);
    if (a > 0) add(off, a, true);
    if (b > a) add(off + a, b - a, false);
    if (n > b) add(off + b, n - b, true);
  }
}

// Whether some 3% of the piece repeats other bytes of it, judged from a
// sample at a tenth of the cost of a trial deflate. Every 8-byte-aligned
// word is entered in a hash table; then, at the start of every 128-byte
// window, the words at its first 8 offsets are looked up. When a stretch
// of 40 bytes or more from the window's start repeats bytes elsewhere in
// the piece, one of those 8 offsets lines up with an aligned word of the
// other copy and finds it; 32 equal bytes count the window as repeated.
// Deflate gains 3% when about 3% of the windows are.
bool FastDeflater::HasRepeats(const uint8_t* p, size_t n) {
  constexpr size_t kWindow = 128, kMatch = 32;
  if (n < 2 * kWindow) return true;  // too small to judge: compress it
  std::fill(table_.begin(), table_.end(), kEmpty);
  for (size_t i = 0; i + 8 <= n; i += 8) table_[Hash(p + i)] = static_cast<uint16_t>(i);
  size_t hits = 0;
  for (size_t w = 0; w + kWindow <= n; w += kWindow) {
    for (size_t k = 0; k < 8; ++k) {
      const size_t at = w + k;
      const uint16_t j = table_[Hash(p + at)];
      if (j == kEmpty || j == at) continue;
      if (j + kMatch <= n && at + kMatch <= n && memcmp(p + j, p + at, kMatch) == 0) {
        ++hits;
        break;
      }
    }
  }
  return hits * kWindow * 100 >= n * 3;
}

size_t FastDeflater::Deflate(absl::string_view in, char* out, size_t cap) {
  if (in.size() >= std::numeric_limits<uint32_t>::max()) return 0;
  isal_zstream z;
  isal_deflate_stateless_init(&z);
  z.level = 1;
  z.level_buf = reinterpret_cast<uint8_t*>(&level_buf_[0]);
  z.level_buf_size = static_cast<uint32_t>(level_buf_.size());
  z.gzip_flag = IGZIP_DEFLATE;
  z.end_of_stream = 1;
  z.flush = NO_FLUSH;
  z.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uint32_t>(in.size());
  z.next_out = reinterpret_cast<uint8_t*>(out);
  z.avail_out = static_cast<uint32_t>(std::min<size_t>(cap, std::numeric_limits<uint32_t>::max()));
  if (isal_deflate_stateless(&z) != COMP_OK) return 0;
  return z.total_out;
}

bool InflateRaw(absl::string_view in, char* out, size_t size) {
  if (in.size() >= std::numeric_limits<uint32_t>::max() ||
      size >= std::numeric_limits<uint32_t>::max()) {
    return false;
  }
  inflate_state s;
  isal_inflate_init(&s);
  s.crc_flag = ISAL_DEFLATE;
  s.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uint32_t>(in.size());
  s.next_out = reinterpret_cast<uint8_t*>(out);
  s.avail_out = static_cast<uint32_t>(size);
  // ISAL_END_INPUT when the stream ended; the whole input and output used.
  return isal_inflate_stateless(&s) == ISAL_DECOMP_OK && s.avail_out == 0 &&
         s.avail_in == 0;
}

uint64_t Crc64(uint64_t crc, absl::string_view data) {
  return crc64_ecma_refl(crc, reinterpret_cast<const unsigned char*>(data.data()), data.size());
}

}  // namespace snapshot
