#include "archive/archive.h"

#include <gtest/gtest.h>
#include <libdeflate.h>
#include <zlib.h>

#include <fstream>
#include <random>
#include <vector>
#include <string>

#include "absl/strings/str_format.h"
#include "archive/parallel_gzip.h"
#include "archive/synthetic_source.h"
#include "archive/tar.h"

namespace snapshot {
namespace {

SnapshotMeta TestMeta(uint64_t size) {
  SnapshotMeta m;
  m.version = 1;
  m.id = "7-1234-1795640819402";
  m.index = 1234;
  m.term = 7;
  m.peers = std::string("\x91\xda\x00\x03" "abc", 7);
  m.servers = {{0, "node-1", "127.0.0.1:7001"},
               {1, "node-2", "127.0.0.1:7002"},
               {2, "node-3 <&>", "127.0.0.1:7003"}};
  m.configuration_index = 12;
  m.size = size;
  return m;
}

std::string StateBytes(uint64_t size, uint64_t seed = 1) {
  std::string s(size, '\0');
  SyntheticSource src(size, seed);
  EXPECT_EQ(*src.Read(&s[0], size), size);
  return s;
}

struct Written {
  std::string archive;
  ArchiveInfo info;
};

Written Write(const SnapshotMeta& meta, const std::string& state,
              WriterOptions opts = {}) {
  Written w;
  StringSource src(state);
  StringSink sink(&w.archive);
  opts.mtime = 1795640819;
  auto info = WriteArchive(meta, &src, &sink, opts);
  EXPECT_TRUE(info.ok()) << info.status();
  if (info.ok()) w.info = *info;
  return w;
}

// Feeds `archive` in chunks of `chunk` bytes; returns the result and the
// state bytes handed to the sink.
absl::StatusOr<ArchiveInfo> Read(absl::string_view archive, std::string* state,
                                 size_t chunk = 1 << 16,
                                 ReaderOptions opts = {}) {
  StringSink sink(state);
  ArchiveReader reader(&sink, std::move(opts));
  while (!archive.empty()) {
    size_t n = std::min(chunk, archive.size());
    absl::Status s = reader.Feed(archive.substr(0, n));
    if (!s.ok()) return s;
    archive.remove_prefix(n);
  }
  return reader.Finish();
}

class RoundTrip : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RoundTrip, MetadataAndStateSurviveExactly) {
  const uint64_t size = GetParam();
  const SnapshotMeta meta = TestMeta(size);
  const std::string state = StateBytes(size);
  Written w = Write(meta, state);
  EXPECT_EQ(w.info.archive_size, w.archive.size());
  EXPECT_EQ(w.info.checksum, ChecksumString(Sha256Of(w.archive)));
  EXPECT_EQ(w.info.state_sha256, Sha256Of(state));

  for (size_t chunk : {size_t{1} << 20, size_t{4093}}) {
    std::string got;
    auto info = Read(w.archive, &got, chunk);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->meta, meta);
    EXPECT_TRUE(got == state);
    EXPECT_EQ(info->archive_size, w.archive.size());
    EXPECT_EQ(info->checksum, w.info.checksum);
    EXPECT_EQ(info->state_sha256, w.info.state_sha256);
    EXPECT_EQ(info->meta_sha256, w.info.meta_sha256);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, RoundTrip,
                         ::testing::Values(0, 1, 511, 512, 513, 4096, 65537,
                                           (3 << 20) + 7));

TEST(Archive, RoundTripEveryCompressionLevel) {
  const std::string state = StateBytes(100000);
  for (int level = 0; level <= 9; ++level) {
    WriterOptions opts;
    opts.compression_level = level;
    Written w = Write(TestMeta(state.size()), state, opts);
    std::string got;
    auto info = Read(w.archive, &got);
    ASSERT_TRUE(info.ok()) << "level " << level << ": " << info.status();
    EXPECT_TRUE(got == state);
  }
}

// The gzip members of an archive written by ParallelGzipCompressor, found
// through the "SA" member-size subfield; empty when a header lacks it or the
// sizes do not tile the archive exactly.
struct Member {
  size_t offset, size;
  bool stored;  // the first deflate block is a stored one
};
std::vector<Member> WalkMembers(const std::string& a) {
  std::vector<Member> out;
  size_t off = 0;
  while (off < a.size()) {
    if (a.size() - off < 28 || a[off + 3] != 4 || a.compare(off + 12, 2, "SA") != 0) {
      return {};
    }
    uint32_t size = 0;
    for (int i = 0; i < 4; ++i) size |= uint32_t{static_cast<uint8_t>(a[off + 16 + i])} << (8 * i);
    if (size < 28 || size > a.size() - off) return {};
    out.push_back({off, size, ((static_cast<uint8_t>(a[off + 20]) >> 1) & 3) == 0});
    off += size;
  }
  return out;
}

// Text-like bytes (compress well) and random bytes (do not), in turns.
std::string MixedState(size_t part, int parts) {
  std::mt19937_64 rng(42);
  std::string s;
  for (int i = 0; i < parts; ++i) {
    if (i % 2 == 0) {
      while (s.size() < part * (i + 1)) {
        s += "key/" + std::to_string(rng() % 5000) + " = value number " +
             std::to_string(rng() % 100) + "\n";
      }
      s.resize(part * (i + 1));
    } else {
      for (size_t k = 0; k < part; ++k) s.push_back(static_cast<char>(rng()));
    }
  }
  return s;
}

TEST(Archive, ParallelCompressorRoundTripsAtEverySizeAndThreadCount) {
  for (uint64_t size : {0, 1, 999, 1000, 1001, 20000}) {
    for (int threads : {1, 2, 3}) {
      const std::string state = StateBytes(size, size + threads);
      WriterOptions opts;
      // Tiny blocks: many members, blocks split anywhere in the tar stream.
      opts.compressor = ParallelGzipCompressor(6, threads, /*block_bytes=*/1000);
      Written w = Write(TestMeta(size), state, opts);
      std::string got;
      auto info = Read(w.archive, &got, 777);
      ASSERT_TRUE(info.ok()) << size << "/" << threads << ": " << info.status();
      EXPECT_TRUE(got == state);
      EXPECT_EQ(info->checksum, w.info.checksum);
    }
  }
  WriterOptions bad;
  bad.compressor = ParallelGzipCompressor(10, 2);
  std::string out;
  StringSource src("");
  StringSink sink(&out);
  EXPECT_EQ(WriteArchive(TestMeta(0), &src, &sink, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

std::string Shell(const std::string& cmd, int* status) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

// The "SA" subfield is information for tools, never trusted by the reader: a
// wrong member size, or a flipped subfield id, changes neither what is read
// nor how far (issue 20, 11).
TEST(Archive, WrongMemberSizesInTheSaSubfieldChangeNothing) {
  const std::string state = StateBytes(20000, 5);
  WriterOptions opts;
  opts.compressor = ParallelGzipCompressor(6, 2, /*block_bytes=*/1000);
  Written w = Write(TestMeta(state.size()), state, opts);
  const std::vector<Member> members = WalkMembers(w.archive);
  ASSERT_GT(members.size(), 3u);
  for (uint32_t wrong : {0u, 1u, 27u, 28u, 1000u, 0x7fffffffu, 0xffffffffu}) {
    for (size_t which : {size_t{0}, members.size() / 2, members.size() - 1}) {
      std::string a = w.archive;
      for (int i = 0; i < 4; ++i) a[members[which].offset + 16 + i] = static_cast<char>(wrong >> (8 * i));
      std::string got;
      auto info = Read(a, &got, 333);
      ASSERT_TRUE(info.ok()) << "size " << wrong << " in member " << which << ": " << info.status();
      EXPECT_TRUE(got == state);
      EXPECT_EQ(info->archive_size, a.size()) << "read to the end, not to where the size says";
    }
  }
  std::string renamed = w.archive;
  renamed[members[1].offset + 12] = 'X';  // "XA": an unknown subfield
  std::string got;
  auto info = Read(renamed, &got, 333);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(got == state);
}

TEST(Archive, ParallelArchiveIsStandardGzipForOtherTools) {
  // gzip(1), tar(1) and Python's zlib-based gzip module read every mode's
  // multi-member archive (stored and compressed members, the SA subfield)
  // like any other, and get the state back byte for byte.
  const std::string state = MixedState(80 << 10, 4) + StateBytes(300000, 5);
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string dir = tmp ? tmp : "/tmp";
  for (Compression level : {Compression::Fast(), Compression(0), Compression(1), Compression(6)}) {
    WriterOptions opts;
    opts.compressor = ParallelGzipCompressor(level, 2, 64 << 10);
    Written w = Write(TestMeta(state.size()), state, opts);
    const std::string path =
        dir + "/parallel" + std::to_string(level.fast() ? -1 : level.level()) + ".snap";
    {
      std::ofstream f(path, std::ios::binary);
      f << w.archive;
    }
    int status;
    Shell("gzip -t '" + path + "'", &status);
    EXPECT_EQ(status, 0) << level.Name();
    EXPECT_EQ(Shell("gzip -dc '" + path + "' | tar tf -", &status),
              "meta.json\nstate.bin\nSHA256SUMS\n") << level.Name();
    EXPECT_EQ(status, 0) << level.Name();
    EXPECT_TRUE(Shell("gzip -dc '" + path + "' | tar xOf - state.bin", &status) == state)
        << level.Name();
    EXPECT_TRUE(Shell("python3 -c 'import gzip,sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())' '" +
                        path + "' | tar xOf - state.bin", &status) == state)
        << level.Name();
    EXPECT_EQ(status, 0) << level.Name();
  }
}

TEST(Archive, ParallelCompressorStoresRandomPiecesAndCompressesTheRest) {
  const size_t part = 96 << 10;
  const std::string state = MixedState(part, 5);  // text, random, text, random, text
  for (Compression level : {Compression::Fast(), Compression(1), Compression(6), Compression(9)}) {
    WriterOptions opts;
    opts.compressor = ParallelGzipCompressor(level, 2, 256 << 10);
    Written w = Write(TestMeta(state.size()), state, opts);
    std::string got;
    auto info = Read(w.archive, &got, 4093);
    ASSERT_TRUE(info.ok()) << level.Name() << ": " << info.status();
    EXPECT_TRUE(got == state) << level.Name();

    std::vector<Member> members = WalkMembers(w.archive);
    ASSERT_FALSE(members.empty()) << level.Name() << ": SA sizes do not tile the archive";
    size_t stored = 0, compressed = 0;
    for (const Member& m : members) (m.stored ? stored : compressed) += m.size;
    // The two random parts are stored (a few bytes of framing per 64 KiB),
    // but for the 16 KiB pieces at their edges that hold some text too; the
    // text parts shrink.
    EXPECT_GE(stored, 2 * (part - 2 * (16 << 10))) << level.Name();
    EXPECT_LE(stored, 2 * part + 2 * part / 1000 + 4 * 64) << level.Name();
    EXPECT_LT(compressed, 3 * part / 2) << level.Name();
  }
  // Random bytes that repeat are compressed, not stored: 2 KiB random
  // blocks, each written 8 times over.
  std::string repeated;
  std::mt19937_64 rng(7);
  while (repeated.size() < (1 << 20)) {
    std::string block;
    for (int k = 0; k < 2048; ++k) block.push_back(static_cast<char>(rng()));
    for (int k = 0; k < 8; ++k) repeated += block;
  }
  for (Compression level : {Compression::Fast(), Compression(6)}) {
    WriterOptions o;
    o.compressor = ParallelGzipCompressor(level, 2);
    Written w = Write(TestMeta(repeated.size()), repeated, o);
    for (const Member& m : WalkMembers(w.archive)) EXPECT_FALSE(m.stored) << level.Name();
    // (ISA-L's level 1 finds few of these repeats in large inputs.)
    if (!level.fast()) {
      EXPECT_LT(w.archive.size(), repeated.size() / 4);
    }
    std::string got;
    ASSERT_TRUE(Read(w.archive, &got).ok());
    EXPECT_TRUE(got == repeated);
  }
  // Level 0 stores everything.
  WriterOptions opts;
  opts.compressor = ParallelGzipCompressor(0, 2, 256 << 10);
  Written w = Write(TestMeta(state.size()), state, opts);
  for (const Member& m : WalkMembers(w.archive)) EXPECT_TRUE(m.stored);
  std::string got;
  ASSERT_TRUE(Read(w.archive, &got).ok());
}

// What gzip (zlib) writes for `data` at `level`: the size users compare with.
size_t GzipSize(const std::string& data, int level) {
  uLongf n = compressBound(data.size());
  std::string out(n, '\0');
  EXPECT_EQ(compress2(reinterpret_cast<Bytef*>(&out[0]), &n,
                      reinterpret_cast<const Bytef*>(data.data()), data.size(), level),
            Z_OK);
  return n;
}

// What libdeflate writes for `data` at `level`, in blocks of `block` bytes.
size_t LibdeflateSize(const std::string& data, int level, size_t block) {
  libdeflate_compressor* c = libdeflate_alloc_compressor(level);
  std::string out(2 * block + 1024, '\0');
  size_t total = 0;
  for (size_t at = 0; at < data.size(); at += block) {
    const size_t n = std::min(block, data.size() - at);
    total += libdeflate_deflate_compress(c, data.data() + at, n, &out[0], out.size());
  }
  libdeflate_free_compressor(c);
  return total;
}

TEST(Archive, LevelIsHonouredAsARatio) {
  // A level is honoured as a ratio: a faster encoder does the work where it
  // reaches, within 1%, libdeflate's size at that level or, when that is
  // larger, gzip's (zlib's); elsewhere the level is kept.
  auto size_at = [](const std::string& state, int level) {
    WriterOptions o;
    o.compressor = ParallelGzipCompressor(level, 2, 1 << 20);
    return Write(TestMeta(state.size()), state, o).archive.size();
  };
  // Within 1%, plus the members' headers and the tar around the state.
  auto near_gzip = [](size_t archive, size_t gzip) { return archive * 100 <= gzip * 101 + 20000; };
  std::mt19937_64 rng(11);
  // Kubernetes-like objects (JSON with long, varying repeats): libdeflate's
  // level 1 is far above gzip -6, so level 6 keeps libdeflate's level.
  std::string pods;
  for (int i = 0; pods.size() < (2 << 20); ++i) {
    pods += "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"app-" + std::to_string(i % 500) + "-" +
            std::to_string(i) + "\",\"namespace\":\"ns-" + std::to_string(i % 40) +
            "\",\"uid\":\"" + std::to_string(rng()) + "\"},\"spec\":{\"containers\":[{\"env\":[";
    for (int k = 0, n = 5 + static_cast<int>(rng() % 56); k < n; ++k) {
      pods += "{\"name\":\"VAR_" + std::to_string(k) + "\",\"value\":\"value-" +
              std::to_string((i * k) % 97) + "\"},";
    }
    pods += "]}]}}\n";
  }
  const size_t pods1 = size_at(pods, 1), pods6 = size_at(pods, 6);
  EXPECT_LT(pods6 * 103, pods1 * 100) << pods6 << " vs " << pods1;
  // The same kind of objects in 4 KiB pages, as a database file holds them:
  // at level 9, libdeflate's level 9 is 6% below gzip -9, its level 8 4%
  // below, its level 7 as large as gzip -9, its level 6 above it: level 9
  // writes about what gzip -9 would, by one of the levels between.
  std::string paged, page;
  auto hex = [&](int bytes) {
    std::string h;
    while (static_cast<int>(h.size()) < 2 * bytes) h += absl::StrFormat("%016x", rng());
    return h.substr(0, 2 * bytes);
  };
  for (int i = 0; paged.size() < (2 << 20); ++i) {
    const std::string app = "app-" + std::to_string(i % 500);
    std::string o = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"" + app + "-" + std::to_string(i) +
                    "\",\"namespace\":\"ns-" + std::to_string(i % 40) + "\",\"uid\":\"" + hex(16) +
                    "\",\"annotations\":{\"checksum/config\":\"" + hex(32) +
                    "\"}},\"spec\":{\"nodeName\":\"node-" + std::to_string(i % 64) +
                    "\",\"containers\":[{\"env\":[";
    for (int k = 0, n = 5 + static_cast<int>(rng() % 56); k < n; ++k) {
      o += "{\"name\":\"VAR_" + std::to_string(k) + "\",\"value\":\"value-" +
           std::to_string((i * k) % 97) + "\"},";
    }
    o += "]}]}}";
    if (page.size() + o.size() > 4096 - 16) {
      page.resize(4096 - 16, '\0');
      paged += absl::StrFormat("%08x%08x", i, 1) + page;
      page.clear();
    }
    page += o;
  }
  const size_t paged9 = size_at(paged, 9), gzip9 = GzipSize(paged, 9);
  EXPECT_TRUE(near_gzip(paged9, gzip9)) << paged9 << " vs gzip " << gzip9;
  const size_t libdeflate9 = LibdeflateSize(paged, 9, 1 << 20);
  EXPECT_GE(paged9 * 1000, libdeflate9 * 1008) << paged9 << " vs libdeflate's level 9 " << libdeflate9;
  // Tiny records (as 32-byte values are): libdeflate's level 6 is well below
  // gzip -6, its level 1 as large as gzip -6: level 6 writes what gzip -6
  // would, at level 1's cost.
  std::string tiny;
  for (int i = 0; tiny.size() < (2 << 20); ++i) {
    char key[32];
    snprintf(key, sizeof(key), "key/%010d", i);
    tiny += std::string("\x0e\0\0\0\x20\0\0\0", 8) + key;  // lengths, key
    for (int k = 0; k < 16; ++k) tiny.push_back(static_cast<char>(rng()));
    tiny += "\"role\":\"admin\"} ";
  }
  const size_t tiny1 = size_at(tiny, 1), tiny6 = size_at(tiny, 6), gzip6 = GzipSize(tiny, 6);
  EXPECT_TRUE(near_gzip(tiny6, gzip6)) << tiny6 << " vs gzip " << gzip6;
  // Written by a faster encoder (igzip or level 1): about gzip -6's size, not
  // libdeflate's level 6, 7% smaller.
  EXPECT_GE(tiny6 * 100, gzip6 * 97) << tiny6 << " vs gzip " << gzip6;
  EXPECT_LE(tiny6 * 100, tiny1 * 101) << tiny6 << " vs " << tiny1;
  // Repetitive records, with repeats up to 32 KiB back: gzip -6 is 10%
  // below libdeflate's level 1 (though not on a 64 KiB sample taken cold):
  // level 6 does not fall back to level 1.
  std::string records;
  for (int i = 0; records.size() < (2 << 20); ++i) {
    records += "{\"id\":" + std::to_string(i) + ",\"status\":\"running\",\"node\":\"n" +
               std::to_string(i % 7) + "\"}\n";
  }
  const size_t rec6 = size_at(records, 6), rec_gzip6 = GzipSize(records, 6);
  EXPECT_TRUE(near_gzip(rec6, rec_gzip6)) << rec6 << " vs gzip " << rec_gzip6;
}

TEST(Archive, FeedingOneByteAtATimeWorks) {
  const std::string state = StateBytes(3000);
  Written w = Write(TestMeta(state.size()), state);
  std::string got;
  auto info = Read(w.archive, &got, 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(got == state);
}

TEST(Archive, WrittenBytesMatchNomadLayout) {
  Written w = Write(TestMeta(1000), StateBytes(1000));
  // Go's gzip header: no flags, mtime 0, XFL 0, OS 255.
  EXPECT_EQ(w.archive.substr(0, 10),
            std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10));
}

// `archive` (one member with Go's 10-byte header) with its header replaced by
// one with the optional fields: FEXTRA of `extra`, FNAME, FCOMMENT and FHCRC.
std::string WithFullHeader(const std::string& archive, const std::string& extra,
                           bool good_hcrc = true) {
  std::string h = archive.substr(0, 10);
  h[3] = 4 | 8 | 16 | 2;
  h.push_back(static_cast<char>(extra.size() & 0xff));
  h.push_back(static_cast<char>(extra.size() >> 8));
  h += extra;
  h += std::string("state.tar", 10);
  h += std::string("a comment", 10);
  uint32_t crc = crc32(0, reinterpret_cast<const Bytef*>(h.data()), h.size());
  if (!good_hcrc) crc ^= 1;
  h.push_back(static_cast<char>(crc & 0xff));
  h.push_back(static_cast<char>((crc >> 8) & 0xff));
  return h + archive.substr(10);
}

TEST(Archive, OptionalGzipHeaderFieldsAreReadAtAnyChunking) {
  const std::string state = StateBytes(5000);
  Written w = Write(TestMeta(state.size()), state);
  // The largest FEXTRA there is (65535 bytes) is accepted.
  for (size_t extra : {0, 6, 65535}) {
    const std::string a = WithFullHeader(w.archive, std::string(extra, 'x'));
    for (size_t chunk : {1, 7, 1 << 20}) {
      if (chunk == 1 && extra > 6) continue;  // slow, and nothing new
      std::string got;
      auto info = Read(a, &got, chunk);
      ASSERT_TRUE(info.ok()) << extra << "/" << chunk << ": " << info.status();
      EXPECT_TRUE(got == state);
    }
  }
  std::string got;
  auto bad = Read(WithFullHeader(w.archive, "ab", false), &got);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("header CRC mismatch"), std::string::npos)
      << bad.status();
  // A header without end (an FNAME that never ends) is refused once it
  // passes the header limit, not buffered for ever.
  std::string endless = w.archive.substr(0, 10);
  endless[3] = 8;
  endless += std::string(200 << 10, 'n');
  auto long_name = Read(endless, &got, 4096);
  EXPECT_EQ(long_name.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(long_name.status().message().find("longer than"), std::string::npos)
      << long_name.status();
  // Compression methods other than deflate are refused by name.
  std::string method = w.archive;
  method[2] = 7;
  auto m = Read(method, &got);
  EXPECT_NE(m.status().message().find("not deflate"), std::string::npos) << m.status();
}

TEST(Archive, RejectsBadCompressionLevel) {
  WriterOptions opts;
  opts.compression_level = 10;
  std::string out;
  StringSource src("");
  StringSink sink(&out);
  auto info = WriteArchive(TestMeta(0), &src, &sink, opts);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Archive, WriterRefusesShortOrLongState) {
  std::string out;
  StringSink sink(&out);
  StringSource shorter("abc");
  auto a = WriteArchive(TestMeta(4), &shorter, &sink);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(a.status().message().find("ended after 3 of the 4"),
            std::string::npos)
      << a.status();
  StringSource longer("abcde");
  auto b = WriteArchive(TestMeta(4), &longer, &sink);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Archive, MultiMemberGzipIsAccepted) {
  // Split the tar stream over three gzip members, as a parallel encoder
  // would; the reader must read it as one stream.
  const std::string state = StateBytes(200000);
  WriterOptions opts;
  opts.compressor = [](ByteSink* out)
      -> absl::StatusOr<std::unique_ptr<Compressor>> {
    class Split : public Compressor {
     public:
      explicit Split(ByteSink* out) : out_(out) {}
      absl::Status Write(absl::string_view d) override {
        while (!d.empty()) {
          if (!cur_) cur_ = *ZlibGzipCompressor(1)(out_);
          size_t n = std::min<size_t>(d.size(), 70000 - in_member_);
          absl::Status s = cur_->Write(d.substr(0, n));
          if (!s.ok()) return s;
          d.remove_prefix(n);
          in_member_ += n;
          if (in_member_ == 70000) {
            s = cur_->Finish();
            if (!s.ok()) return s;
            cur_.reset();
            in_member_ = 0;
          }
        }
        return absl::OkStatus();
      }
      absl::Status Finish() override {
        if (!cur_) cur_ = *ZlibGzipCompressor(1)(out_);
        return cur_->Finish();
      }

     private:
      ByteSink* out_;
      std::unique_ptr<Compressor> cur_;
      size_t in_member_ = 0;
    };
    return std::unique_ptr<Compressor>(new Split(out));
  };
  Written w = Write(TestMeta(state.size()), state, opts);
  std::string got;
  auto info = Read(w.archive, &got);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(got == state);
}

void ExpectDataLoss(const absl::StatusOr<ArchiveInfo>& r,
                    absl::string_view substring) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find(substring), absl::string_view::npos)
      << r.status();
}

TEST(Archive, TruncationAtEveryOffsetIsRejected) {
  const std::string state = StateBytes(1500);
  Written w = Write(TestMeta(state.size()), state);
  for (size_t cut = 0; cut < w.archive.size(); ++cut) {
    std::string got;
    auto r = Read(absl::string_view(w.archive).substr(0, cut), &got, 97);
    ASSERT_FALSE(r.ok()) << "accepted an archive cut at " << cut;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  }
}

TEST(Archive, TruncationInsideStateIsNamed) {
  // Level 0 stores the data, so a cut lands at a predictable tar offset.
  const std::string state = StateBytes(100000);
  WriterOptions opts;
  opts.compression_level = 0;
  Written w = Write(TestMeta(state.size()), state, opts);
  std::string got;
  auto r = Read(absl::string_view(w.archive).substr(0, 50000), &got);
  ExpectDataLoss(r, "archive truncated inside state.bin after ");
  ExpectDataLoss(r, " of 100000 bytes");
}

TEST(Archive, RandomBitFlipsAreRejectedOrHarmless) {
  const std::string state = StateBytes(5000);
  const SnapshotMeta meta = TestMeta(state.size());
  Written w = Write(meta, state);
  std::mt19937_64 rng(42);
  int rejected = 0, harmless = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bad = w.archive;
    size_t bit = rng() % (bad.size() * 8);
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    std::string got;
    auto r = Read(bad, &got);
    if (r.ok()) {
      // A flip may go unnoticed only where it changes no data: the gzip
      // header fields no checksum covers (FLG.FTEXT, MTIME, XFL, OS), or
      // deflate bits that decode to the same bytes (e.g. an unused code
      // length). What is read must then be exactly what was written.
      EXPECT_EQ(r->meta, meta) << "bit " << bit;
      EXPECT_TRUE(got == state) << "bit " << bit;
      ++harmless;
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 2900) << harmless << " flips went unnoticed";
}

TEST(Archive, TrailingGarbageAfterGzipIsRejected) {
  Written w = Write(TestMeta(10), StateBytes(10));
  std::string got;
  ExpectDataLoss(Read(w.archive + "GARBAGE-GARBAGE!", &got),
                 "trailing data after the archive");
  ExpectDataLoss(Read(w.archive + std::string(1, '\0'), &got),
                 "trailing data after the archive");
}

TEST(Archive, DataAfterTarEndIsRejected) {
  // A second gzip member that decompresses to more bytes after the tar end.
  Written w = Write(TestMeta(10), StateBytes(10));
  std::string extra;
  StringSink sink(&extra);
  auto gz = *ZlibGzipCompressor(6)(&sink);
  ASSERT_TRUE(gz->Write(std::string(512, '\0')).ok());
  ASSERT_TRUE(gz->Finish().ok());
  std::string got;
  ExpectDataLoss(Read(w.archive + extra, &got),
                 "trailing data after the end of the tar archive");
}

TEST(Archive, EmptyGzipMemberAfterArchiveIsAccepted) {
  Written w = Write(TestMeta(10), StateBytes(10));
  std::string extra;
  StringSink sink(&extra);
  auto gz = *ZlibGzipCompressor(6)(&sink);
  ASSERT_TRUE(gz->Finish().ok());
  std::string got;
  EXPECT_TRUE(Read(w.archive + extra, &got).ok());
}

TEST(Archive, EmptyInputAndNonGzipAreRejected) {
  std::string got;
  ExpectDataLoss(Read("", &got), "archive is empty");
  ExpectDataLoss(Read(std::string(1024, '\0'), &got), "not a gzip archive");
}

TEST(Archive, LimitsAreResourceExhausted) {
  const std::string state = StateBytes(5000);
  Written w = Write(TestMeta(state.size()), state);
  std::string got;
  ReaderOptions small_state;
  small_state.max_state_bytes = 4999;
  auto r = Read(w.archive, &got, 1 << 16, small_state);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(got.empty()) << "state bytes were passed on before the check";

  ReaderOptions small_meta;
  small_meta.max_meta_bytes = 10;
  r = Read(w.archive, &got, 1 << 16, small_meta);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);

  ReaderOptions small_archive;
  small_archive.max_archive_bytes = w.archive.size() - 1;
  r = Read(w.archive, &got, 1 << 16, small_archive);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(Archive, OnMetaHookCanRefuseEarly) {
  const std::string state = StateBytes(5000);
  Written w = Write(TestMeta(state.size()), state);
  ReaderOptions opts;
  uint64_t seen_index = 0;
  opts.on_meta = [&](const SnapshotMeta& m) {
    seen_index = m.index;
    return absl::FailedPreconditionError("no room");
  };
  std::string got;
  auto r = Read(w.archive, &got, 1 << 16, opts);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(seen_index, 1234u);
  EXPECT_TRUE(got.empty());
}

// Builds an archive from hand-made tar entries, to test what the writer
// never produces.
std::string MakeArchive(
    const std::vector<std::pair<std::string, std::string>>& files,
    absl::string_view tail = std::string(1024, '\0')) {
  std::string tarball;
  for (const auto& [name, data] : files) {
    tarball += tar::EncodeFileHeader(name, data.size(), 0);
    tarball += data;
    tarball.append(tar::PaddingFor(data.size()), '\0');
  }
  tarball.append(tail.data(), tail.size());
  std::string out;
  StringSink sink(&out);
  auto gz = *ZlibGzipCompressor(6)(&sink);
  EXPECT_TRUE(gz->Write(tarball).ok());
  EXPECT_TRUE(gz->Finish().ok());
  return out;
}

struct Files {
  std::string meta = *EncodeMetaJson(TestMeta(5));
  std::string state = "hello";
  std::string Sums() const {
    return HexLower(Sha256Of(meta)) + "  meta.json\n" +
           HexLower(Sha256Of(state)) + "  state.bin\n";
  }
};

TEST(Archive, HandMadeArchiveIsAccepted) {
  Files f;
  std::string got;
  auto r = Read(MakeArchive({{"state.bin", f.state},
                             {"SHA256SUMS", f.Sums()},
                             {"meta.json", f.meta}}),
                &got);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(got, "hello");
}

TEST(Archive, UnknownDuplicateAndMissingFilesAreRejected) {
  Files f;
  std::string got;
  ExpectDataLoss(Read(MakeArchive({{"meta.json", f.meta},
                                   {"state.bin", f.state},
                                   {"SHA256SUMS", f.Sums()},
                                   {"nope", "extra\n"}}),
                      &got),
                 "unexpected file \"nope\" in snapshot");
  ExpectDataLoss(Read(MakeArchive({{"meta.json", f.meta},
                                   {"state.bin", f.state},
                                   {"state.bin", f.state},
                                   {"SHA256SUMS", f.Sums()}}),
                      &got),
                 "duplicate file \"state.bin\"");
  ExpectDataLoss(
      Read(MakeArchive({{"meta.json", f.meta}, {"state.bin", f.state}}), &got),
      "file missing from snapshot: SHA256SUMS");
  ExpectDataLoss(
      Read(MakeArchive({{"meta.json", f.meta}, {"SHA256SUMS", f.Sums()}}),
           &got),
      "file missing from snapshot: state.bin");
}

TEST(Archive, Sha256SumsProblemsAreNamed) {
  Files f;
  std::string got;
  auto with_sums = [&](const std::string& sums) {
    return Read(MakeArchive({{"meta.json", f.meta},
                             {"state.bin", f.state},
                             {"SHA256SUMS", sums}}),
                &got);
  };
  std::string good = f.Sums();
  std::string bad_state = good;
  bad_state[good.find('\n') + 1] ^= 1;
  ExpectDataLoss(with_sums(bad_state), "hash mismatch for state.bin");
  ExpectDataLoss(with_sums(good.substr(0, good.find('\n') + 1)),
                 "SHA256SUMS has no hash for state.bin");
  ExpectDataLoss(with_sums(good + HexLower(Sha256Of("")) + "  other\n"),
                 "lists a hash for \"other\"");
  ExpectDataLoss(with_sums(good + good.substr(0, good.find('\n') + 1)),
                 "lists meta.json twice");
  ExpectDataLoss(with_sums("xyz  meta.json\n"), "SHA256SUMS line 1");
  ExpectDataLoss(with_sums("\n" + good), "SHA256SUMS line 1");
  // Forms sha256sum and Go's Sscanf accept: CRLF, upper case, tabs, '*'.
  std::string relaxed = HexLower(Sha256Of(f.meta)) + "\t*meta.json\r\n";
  std::string upper = HexLower(Sha256Of(f.state));
  for (char& c : upper) c = static_cast<char>(toupper(c));
  relaxed += upper + "    state.bin";
  EXPECT_TRUE(with_sums(relaxed).ok());
}

TEST(Archive, MetaSizeMustMatchState) {
  Files f;
  f.meta = *EncodeMetaJson(TestMeta(6));
  std::string got;
  ExpectDataLoss(Read(MakeArchive({{"meta.json", f.meta},
                                   {"state.bin", f.state},
                                   {"SHA256SUMS", f.Sums()}}),
                      &got),
                 "meta.json says the state is 6 bytes but state.bin holds 5");
}

TEST(Archive, BrokenMetaJsonIsDataLoss) {
  Files f;
  f.meta = "{\"Version\":1,\"ID\":\"x\",\"Index\":-1,\"Term\":1,\"Size\":5}";
  std::string got;
  ExpectDataLoss(Read(MakeArchive({{"meta.json", f.meta},
                                   {"state.bin", f.state},
                                   {"SHA256SUMS", f.Sums()}}),
                      &got),
                 "field Index must be a non-negative integer");
}

TEST(Archive, NonRegularEntriesAndBadTarEndAreRejected) {
  Files f;
  std::string got;
  std::string out;
  StringSink sink(&out);
  auto gz = *ZlibGzipCompressor(6)(&sink);
  ASSERT_TRUE(gz->Write(tar::EncodeHeaderBlock("dir/", 0, 0, '5') +
                        std::string(1024, '\0'))
                  .ok());
  ASSERT_TRUE(gz->Finish().ok());
  ExpectDataLoss(Read(out, &got), "of tar type '5'");

  // One zero block, then data.
  ExpectDataLoss(Read(MakeArchive({{"meta.json", f.meta}},
                                  std::string(512, '\0') +
                                      tar::EncodeFileHeader("state.bin", 0, 0)),
                      &got),
                 "followed by data instead of a second zero block");
  // Only one zero block at the end.
  ExpectDataLoss(Read(MakeArchive({{"meta.json", f.meta},
                                   {"state.bin", f.state},
                                   {"SHA256SUMS", f.Sums()}},
                                  std::string(512, '\0')),
                      &got),
                 "truncated inside the tar end marker");
}

TEST(Archive, CorruptTarHeaderChecksumIsRejected) {
  Files f;
  std::string tarball = tar::EncodeFileHeader("meta.json", f.meta.size(), 0);
  tarball[0] = 'M';
  tarball += f.meta;
  std::string out;
  StringSink sink(&out);
  auto gz = *ZlibGzipCompressor(6)(&sink);
  ASSERT_TRUE(gz->Write(tarball).ok());
  ASSERT_TRUE(gz->Finish().ok());
  std::string got;
  ExpectDataLoss(Read(out, &got), "checksum mismatch");
}

TEST(Archive, FeedAfterErrorKeepsFailing) {
  std::string got;
  StringSink sink(&got);
  ArchiveReader reader(&sink);
  EXPECT_FALSE(reader.Feed("not gzip").ok());
  EXPECT_FALSE(reader.Feed("\x1f\x8b").ok());
  EXPECT_FALSE(reader.Finish().ok());
}

}  // namespace
}  // namespace snapshot
