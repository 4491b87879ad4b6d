#include "base/sha256.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace snapshot {
namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Sha256, KnownAnswer) {
  EXPECT_EQ(HexLower(Sha256Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ChecksumString(Sha256Of("")),
            "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST(AsyncSha256, EqualsSha256WhateverTheSplit) {
  // Empty, under one block, exactly blocks, and many blocks (the queue
  // fills and Update waits), fed in pieces of several sizes.
  for (size_t size : {size_t{0}, size_t{1000}, AsyncSha256::kBlock, 3 * AsyncSha256::kBlock,
                      9 * AsyncSha256::kBlock + 12345}) {
    const std::string data = RandomBytes(size, static_cast<uint32_t>(size));
    for (size_t piece : {size_t{1} << 10, size_t{777777}, size_t{4} << 20}) {
      AsyncSha256 h;
      for (size_t off = 0; off < data.size(); off += piece) {
        h.Update(absl::string_view(data).substr(off, piece));
      }
      EXPECT_EQ(HexLower(h.Finish()), HexLower(Sha256Of(data)))
          << "size " << size << " piece " << piece;
    }
  }
}

TEST(AsyncSha256, SpaceAndCommitEqualUpdate) {
  // Fills written in place, of uneven sizes, some empty, mixed with Update:
  // the digest is that of the bytes in order, and what was written stays
  // readable until Commit.
  const std::string data = RandomBytes(7 * AsyncSha256::kBlock + 4321, 7);
  AsyncSha256 h;
  size_t off = 0;
  for (size_t i = 0; off < data.size(); ++i) {
    if (i % 5 == 4) {
      const size_t n = std::min<size_t>(data.size() - off, 100000);
      h.Update(absl::string_view(data).substr(off, n));
      off += n;
      continue;
    }
    size_t room = 0;
    char* p = h.Space(&room);
    ASSERT_GT(room, 0u);
    const size_t n = std::min({room, data.size() - off, (i % 3) * size_t{300000}});
    memcpy(p, data.data() + off, n);
    ASSERT_EQ(absl::string_view(p, n), absl::string_view(data).substr(off, n));
    h.Commit(n);
    off += n;
  }
  EXPECT_EQ(HexLower(h.Finish()), HexLower(Sha256Of(data)));
}

TEST(AsyncSha256, IsReusableAfterFinish) {
  const std::string a = RandomBytes(5 * AsyncSha256::kBlock + 3, 1);
  AsyncSha256 h;
  h.Update(a);
  EXPECT_EQ(h.Finish(), Sha256Of(a));
  h.Update("abc");
  EXPECT_EQ(h.Finish(), Sha256Of("abc"));
  h.Update(a);
  EXPECT_EQ(h.Finish(), Sha256Of(a));
}

TEST(AsyncSha256, DestroyedWithoutFinish) {
  AsyncSha256 h;
  h.Update(RandomBytes(6 * AsyncSha256::kBlock, 2));
}  // joins its thread

}  // namespace
}  // namespace snapshot
