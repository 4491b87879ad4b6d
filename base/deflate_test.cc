#include "base/deflate.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace snapshot {
namespace {

TEST(Deflate, RoundTripsAndRefusesWhatDoesNotFitOrMatch) {
  std::mt19937_64 rng(3);
  std::string text, noise;
  while (text.size() < (1 << 20)) text += "key/" + std::to_string(rng() % 1000) + " value\n";
  for (int i = 0; i < (1 << 16); ++i) noise.push_back(static_cast<char>(rng()));
  FastDeflater d;
  std::string out(text.size(), '\0');
  size_t n = d.Deflate(text, &out[0], out.size());
  ASSERT_GT(n, 0u);
  EXPECT_LT(n, text.size() / 3);
  std::string back(text.size(), '\0');
  ASSERT_TRUE(InflateRaw(absl::string_view(out.data(), n), &back[0], back.size()));
  EXPECT_TRUE(back == text);
  // A wrong size, a truncated or a damaged stream: refused.
  EXPECT_FALSE(InflateRaw(absl::string_view(out.data(), n), &back[0], back.size() - 1));
  std::string bigger(text.size() + 1, '\0');
  EXPECT_FALSE(InflateRaw(absl::string_view(out.data(), n), &bigger[0], bigger.size()));
  EXPECT_FALSE(InflateRaw(absl::string_view(out.data(), n / 2), &back[0], back.size()));
  out[n / 2] ^= 0x55;
  std::string junk(text.size(), '\0');
  bool ok = InflateRaw(absl::string_view(out.data(), n), &junk[0], junk.size());
  EXPECT_TRUE(!ok || junk != text);
  // Random bytes do not fit in less than their size.
  std::string small(noise.size() - 1, '\0');
  EXPECT_EQ(d.Deflate(noise, &small[0], small.size()), 0u);
}

TEST(FastDeflater, ClassifyFindsWhereRandomBytesBeginAndEndWithinAQuarter) {
  // Values of 64 KiB as in many stores: a random half, then a text half,
  // placed at offsets that are not multiples of a piece.
  std::mt19937_64 rng(5);
  std::string data(1000, 'h');  // a header that shifts everything
  std::vector<std::pair<size_t, size_t>> random_spans;
  const std::string text = "{\"user\":\"alice\",\"role\":\"admin\"} ";
  for (int v = 0; v < 16; ++v) {
    random_spans.emplace_back(data.size(), data.size() + 32768);
    for (int i = 0; i < 32768; ++i) data.push_back(static_cast<char>(rng()));
    for (int i = 0; i < 32768; ++i) data.push_back(text[i % text.size()]);
  }
  FastDeflater d;
  std::vector<FastDeflater::Run> runs;
  d.Classify(data, &runs);
  // The runs tile the data, alternate, and random bytes judged compressible
  // are at most a quarter piece at each end of each random span.
  size_t at = 0, random_compressed = 0, text_stored = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const FastDeflater::Run& r = runs[i];
    EXPECT_EQ(r.start, at);
    if (i > 0) {
      EXPECT_NE(r.incompressible, runs[i - 1].incompressible);
    }
    for (size_t b = r.start; b < r.start + r.size; ++b) {
      bool random = false;
      for (const auto& s : random_spans) random |= b >= s.first && b < s.second;
      if (random && !r.incompressible) ++random_compressed;
      if (!random && r.incompressible) ++text_stored;
    }
    at += r.size;
  }
  EXPECT_EQ(at, data.size());
  EXPECT_LE(random_compressed, random_spans.size() * 2 * FastDeflater::kPiece / 4);
  EXPECT_LE(text_stored, random_spans.size() * 2 * FastDeflater::kPiece);
  // Without refinement, each random span would lose about a piece to the
  // deflater on either side; it must be well under that.
  EXPECT_LT(random_compressed, random_spans.size() * FastDeflater::kPiece);
  d.Classify("", &runs);
  EXPECT_TRUE(runs.empty());

  // The entropy of each piece, taken beforehand by the caller: the same runs.
  // A hint of the wrong length is ignored.
  d.Classify(data, &runs);
  std::vector<double> entropy;
  for (size_t off = 0; off < data.size(); off += FastDeflater::kPiece) {
    entropy.push_back(
        FastDeflater::SampledEntropy(absl::string_view(data).substr(off, FastDeflater::kPiece)));
  }
  auto same = [](const std::vector<FastDeflater::Run>& a, const std::vector<FastDeflater::Run>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].start != b[i].start || a[i].size != b[i].size ||
          a[i].incompressible != b[i].incompressible) {
        return false;
      }
    }
    return true;
  };
  std::vector<FastDeflater::Run> hinted;
  d.Classify(data, &hinted, &entropy);
  EXPECT_TRUE(same(runs, hinted));
  entropy.pop_back();
  d.Classify(data, &hinted, &entropy);
  EXPECT_TRUE(same(runs, hinted));
}

TEST(Crc64, KnownValueAndChunkingDoesNotMatter) {
  // CRC-64/XZ (ECMA-182, reflected) check value of "123456789".
  EXPECT_EQ(Crc64(0, "123456789"), 0x995DC9BBDF1939FAull);
  EXPECT_EQ(Crc64(Crc64(0, "1234"), "56789"), Crc64(0, "123456789"));
  EXPECT_NE(Crc64(0, "123456789"), Crc64(0, "123456788"));
}

}  // namespace
}  // namespace snapshot
