#include "raft/libraft_crc32.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace snapshot {
namespace {

TEST(LibraftCrc32, IsAcceleratedOnThisLibraft) {
  // Debian 12's libraft 0.15.0: the start-up comparison must pass, or the
  // restore path silently runs at libraft's own speed again.
  EXPECT_TRUE(LibraftCrc32IsAccelerated());
}

TEST(LibraftCrc32, MatchesLibraftOnRandomBuffers) {
  std::mt19937_64 rng(7);
  std::string buf(1 << 20, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  std::uniform_int_distribution<std::size_t> offset(0, 4095);
  std::uniform_int_distribution<std::size_t> small(0, 300);
  std::uniform_int_distribution<std::size_t> large(0, (1 << 20) - 4096);
  for (int i = 0; i < 400; ++i) {
    const std::size_t at = offset(rng);
    const std::size_t n = i % 2 ? small(rng) : large(rng);
    const unsigned init = i % 3 ? static_cast<unsigned>(rng()) : 0u;
    ASSERT_EQ(LibraftCrc32(buf.data() + at, n, init),
              LibraftCrc32Reference(buf.data() + at, n, init))
        << "offset " << at << " size " << n << " init " << init;
  }
}

TEST(LibraftCrc32, ChainsLikeLibraft) {
  // libraft checksums a batch in pieces (header, then each entry's data),
  // passing the previous value as `init`.
  const std::string text = "123456789";
  const unsigned whole = LibraftCrc32(text.data(), text.size(), 0);
  EXPECT_EQ(whole, LibraftCrc32Reference(text.data(), text.size(), 0));
  EXPECT_EQ(LibraftCrc32(text.data() + 4, 5, LibraftCrc32(text.data(), 4, 0)),
            whole);
  // "123456789" under polynomial 0x04C11DB7, not reflected, no inversion:
  // CRC-32/CKSUM's check value 0x765e7680 without CKSUM's final inversion.
  EXPECT_EQ(whole, 0x89a1897fu);
}

}  // namespace
}  // namespace snapshot
