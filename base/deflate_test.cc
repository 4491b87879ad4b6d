#include "base/deflate.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

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

TEST(Crc64, KnownValueAndChunkingDoesNotMatter) {
  // CRC-64/XZ (ECMA-182, reflected) check value of "123456789".
  EXPECT_EQ(Crc64(0, "123456789"), 0x995DC9BBDF1939FAull);
  EXPECT_EQ(Crc64(Crc64(0, "1234"), "56789"), Crc64(0, "123456789"));
  EXPECT_NE(Crc64(0, "123456789"), Crc64(0, "123456788"));
}

}  // namespace
}  // namespace snapshot
