#include "archive/tar.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "archive/archive.h"

namespace snapshot {
namespace {

TEST(Tar, UstarHeaderMatchesGoLayout) {
  std::string h = tar::EncodeFileHeader("meta.json", 307, 1795640819);
  ASSERT_EQ(h.size(), 512u);
  EXPECT_EQ(h.substr(100, 8), std::string("0000600\0", 8));
  EXPECT_EQ(h.substr(124, 12), std::string("00000000463\0", 12));
  EXPECT_EQ(h.substr(257, 8), std::string("ustar\0" "00", 8));
  EXPECT_EQ(h[156], '0');
  auto parsed = tar::ParseHeader(h);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name, "meta.json");
  EXPECT_EQ(parsed->size, 307u);
}

TEST(Tar, HeadersAreByteIdenticalToGoArchiveTar) {
  // small-plain.tar is the tar inside Nomad's small.snap, written by Go.
  std::ifstream in("external/shared/interop/small-plain.tar", std::ios::binary);
  ASSERT_TRUE(in.good());
  std::string go((std::istreambuf_iterator<char>(in)),
                 std::istreambuf_iterator<char>());
  ASSERT_EQ(go.size(), 5120u);
  const int64_t mtime = std::stoll(go.substr(136, 11), nullptr, 8);
  // meta.json (307 bytes) at 0, state.bin (1075 bytes) at 1024, SHA256SUMS
  // (152 bytes) at 3072, end marker at 4096.
  EXPECT_EQ(tar::EncodeFileHeader("meta.json", 307, mtime), go.substr(0, 512));
  EXPECT_EQ(tar::EncodeFileHeader("state.bin", 1075, mtime),
            go.substr(1024, 512));
  EXPECT_EQ(tar::EncodeFileHeader("SHA256SUMS", 152, mtime),
            go.substr(3072, 512));
  EXPECT_TRUE(tar::IsZeroBlock(go.substr(4096, 512)));
  std::string broken = go.substr(0, 512);
  broken[0] ^= 1;
  EXPECT_EQ(tar::ParseHeader(broken).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(Tar, EightGiBStateGetsPaxSizeRecordLikeGo) {
  const uint64_t size = uint64_t{8} << 30;
  std::string h = tar::EncodeFileHeader("state.bin", size, 0);
  ASSERT_EQ(h.size(), 3 * 512u);
  auto pax = tar::ParseHeader(h.substr(0, 512));
  ASSERT_TRUE(pax.ok());
  EXPECT_EQ(pax->typeflag, 'x');
  EXPECT_EQ(pax->name, "PaxHeaders.0/state.bin");
  EXPECT_EQ(h.substr(512, pax->size), "19 size=8589934592\n");
  auto rec = tar::ParsePax(h.substr(512, pax->size));
  ASSERT_TRUE(rec.ok());
  EXPECT_TRUE(rec->has_size);
  EXPECT_EQ(rec->size, size);
  auto ustar = tar::ParseHeader(h.substr(1024, 512));
  ASSERT_TRUE(ustar.ok());
  EXPECT_EQ(ustar->name, "state.bin");
  EXPECT_EQ(ustar->size, 0u);
}

TEST(Tar, Base256SizeIsRead) {
  std::string h = tar::EncodeHeaderBlock("state.bin", 0, 0, '0');
  // GNU base-256: 0x80 marker then big-endian bytes.
  std::string field(12, '\0');
  field[0] = static_cast<char>(0x80);
  field[11] = 5;
  h.replace(124, 12, field);
  for (int i = 148; i < 156; ++i) h[i] = ' ';
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  snprintf(&h[148], 8, "%06o", sum);
  h[155] = ' ';
  auto parsed = tar::ParseHeader(h);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->size, 5u);
}

TEST(Tar, MalformedPaxIsDataLoss) {
  EXPECT_FALSE(tar::ParsePax("5 size=1\n").ok());
  EXPECT_FALSE(tar::ParsePax("10 size=x\n").ok());
  EXPECT_FALSE(tar::ParsePax("9 nokey\n").ok());
  EXPECT_EQ(tar::PaxRecord("size", "5"), "9 size=5\n");
  EXPECT_TRUE(tar::ParsePax(tar::PaxRecord("mtime", "1.5")).ok());
}

// The reader takes a state.bin whose size comes from a PAX record (what Go
// writes for ≥ 8 GiB), here on a small entry so the test stays fast.
TEST(Tar, ReaderHonoursPaxSize) {
  SnapshotMeta meta;
  meta.id = "pax";
  meta.size = 5;
  std::string meta_json = *EncodeMetaJson(meta);
  std::string sums = HexLower(Sha256Of(meta_json)) + "  meta.json\n" +
                     HexLower(Sha256Of("hello")) + "  state.bin\n";
  std::string pax = tar::PaxRecord("size", "5");
  auto pad = [](size_t n) { return std::string(tar::PaddingFor(n), '\0'); };
  std::string t = tar::EncodeFileHeader("meta.json", meta_json.size(), 0) +
                  meta_json + pad(meta_json.size()) +
                  tar::EncodeHeaderBlock("PaxHeaders.0/state.bin", pax.size(),
                                         0, 'x') +
                  pax + pad(pax.size()) +
                  tar::EncodeHeaderBlock("state.bin", 0, 0, '0') + "hello" +
                  pad(5) + tar::EncodeFileHeader("SHA256SUMS", sums.size(), 0) +
                  sums + pad(sums.size()) + std::string(1024, '\0');
  std::string archive;
  StringSink sink(&archive);
  auto gz = *ZlibGzipCompressor(6)(&sink);
  ASSERT_TRUE(gz->Write(t).ok());
  ASSERT_TRUE(gz->Finish().ok());

  std::string state;
  StringSink state_sink(&state);
  ArchiveReader reader(&state_sink);
  ASSERT_TRUE(reader.Feed(archive).ok());
  auto info = reader.Finish();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(state, "hello");
}

}  // namespace
}  // namespace snapshot
