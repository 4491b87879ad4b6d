// A state of several hundred MiB, generated on the fly, streams through the
// writer straight into the reader; peak memory must stay flat.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "archive/archive.h"
#include "archive/synthetic_source.h"

namespace snapshot {
namespace {

// Peak resident set size of this process in KiB (VmHWM).
uint64_t PeakRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  ADD_FAILURE() << "no VmHWM in /proc/self/status";
  return 0;
}

// Feeds everything written to it into an ArchiveReader.
class ReaderSink : public ByteSink {
 public:
  explicit ReaderSink(ArchiveReader* r) : reader_(r) {}
  absl::Status Write(absl::string_view data) override {
    return reader_->Feed(data);
  }

 private:
  ArchiveReader* reader_;
};

class HashSink : public ByteSink {
 public:
  absl::Status Write(absl::string_view data) override {
    hash.Update(data);
    bytes += data.size();
    return absl::OkStatus();
  }
  Sha256 hash;
  uint64_t bytes = 0;
};

TEST(LargeStream, HundredsOfMiBStreamWithFlatMemory) {
  constexpr uint64_t kSize = uint64_t{384} << 20;
  constexpr uint64_t kSeed = 7;

  // Expected digest, computed from an independent pass over the source.
  SyntheticSource reference(kSize, kSeed);
  const Digest expected = *Sha256OfSource(&reference);

  const uint64_t rss_before = PeakRssKiB();
  SnapshotMeta meta;
  meta.id = "large";
  meta.index = 99;
  meta.term = 3;
  meta.size = kSize;
  HashSink state_out;
  ArchiveReader reader(&state_out);
  ReaderSink pipe(&reader);
  SyntheticSource src(kSize, kSeed);
  WriterOptions opts;
  opts.compression_level = 1;
  auto written = WriteArchive(meta, &src, &pipe, opts);
  ASSERT_TRUE(written.ok()) << written.status();
  auto read = reader.Finish();
  ASSERT_TRUE(read.ok()) << read.status();
  const uint64_t rss_after = PeakRssKiB();

  EXPECT_EQ(read->meta, meta);
  EXPECT_EQ(state_out.bytes, kSize);
  EXPECT_EQ(state_out.hash.Finish(), expected);
  EXPECT_EQ(read->checksum, written->checksum);
  EXPECT_EQ(read->archive_size, written->archive_size);
  // Half-compressible data: the archive is well below the state size.
  EXPECT_LT(written->archive_size, kSize * 3 / 4);
  // Fixed buffers only: the peak grows by a few MiB, not with the state.
  EXPECT_LT(rss_after - rss_before, 32u * 1024)
      << "peak RSS grew from " << rss_before << " KiB to " << rss_after
      << " KiB while streaming " << (kSize >> 20) << " MiB";
  std::cout << "archive " << written->archive_size << " bytes for " << kSize
            << " bytes of state; peak RSS " << rss_before << " -> "
            << rss_after << " KiB\n";
}

}  // namespace
}  // namespace snapshot
