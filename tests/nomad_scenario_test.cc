// The scenario of Nomad's own snapshot tests, end to end through the real
// parts: 65,536 entries of 256 random bytes written through a Raft node ->
// snapshot -> archive (codec) -> verify -> restore into a fresh, independent
// node that already holds other data -> identical state. And: a truncated
// archive, or a Nomad archive, leaves the target's data untouched.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "archive/archive.h"
#include "core/snapshot_ops.h"
#include "raft/embedded_node.h"
#include "raft/testing/cluster.h"

namespace snapshot {
namespace {

using testing::FreePort;
using testing::TempDir;

absl::Time In(absl::Duration d) { return absl::Now() + d; }

std::unique_ptr<EmbeddedNode> StartSingle(const std::string& dir) {
  EmbeddedNodeConfig c;
  c.id = 1;
  c.raft_address = absl::StrFormat("127.0.0.1:%d", FreePort());
  c.data_dir = dir;
  c.snapshot_threshold = 16384;
  c.snapshot_trailing = 1024;
  auto n = EmbeddedNode::Start(c);
  EXPECT_TRUE(n.ok()) << n.status();
  if (!n.ok()) return nullptr;
  EXPECT_TRUE((*n)->WaitForLeader(In(absl::Seconds(10))).ok());
  return std::move(*n);
}

// Feeds a file to a spool in 64 KiB chunks, like the RPC will.
absl::StatusOr<ArchiveInfo> Spool(RestoreSpool* spool, const std::string& file,
                                  size_t limit = SIZE_MAX) {
  auto src = FileSource::Open(file);
  if (!src.ok()) return src.status();
  std::string buf(65536, '\0');
  size_t total = 0;
  for (;;) {
    size_t n = *src->Read(&buf[0], buf.size());
    n = std::min(n, limit - total);
    if (n == 0) break;
    total += n;
    absl::Status s = spool->Write(absl::string_view(buf.data(), n));
    if (!s.ok()) return s;
  }
  return spool->Finish();
}

bool HasSpoolFiles(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(".restore-", 0) == 0) return true;
  }
  return false;
}

TEST(NomadScenario, SnapshotArchiveVerifyRestoreIntoAnotherNode) {
  TempDir dir;
  auto source = StartSingle(dir.path() + "/a");
  ASSERT_NE(source, nullptr);

  // 65,536 entries of 256 random bytes, 16 writers.
  constexpr int kEntries = 65536;
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 16; ++t) {
    writers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::string value(256, '\0');
      for (int i; (i = next++) < kEntries;) {
        for (char& c : value) c = static_cast<char>(rng());
        if (!source->Put(absl::StrFormat("entry/%05d", i), value, In(absl::Seconds(30))).ok()) {
          ++failed;
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_EQ(failed, 0);

  // Snapshot -> archive file.
  const std::string archive = dir.path() + "/backup.snap";
  ArchiveInfo written;
  {
    auto out = FileSink::Create(archive, 0600, true);
    ASSERT_TRUE(out.ok());
    bool metadata_first = false;
    auto info = TakeArchive(
        source.get(), {}, &*out, In(absl::Seconds(10)),
        [&](const CapturedSnapshot& s) {
          metadata_first = s.meta.index >= kEntries;
          return absl::OkStatus();
        });
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_TRUE(out->SyncAndClose().ok());
    EXPECT_TRUE(metadata_first);
    written = *info;
  }
  // Verify.
  {
    auto src = FileSource::Open(archive);
    ASSERT_TRUE(src.ok());
    auto verified = ReadArchive(&*src, nullptr);
    ASSERT_TRUE(verified.ok()) << verified.status();
    EXPECT_EQ(verified->checksum, written.checksum);
    EXPECT_EQ(verified->meta, written.meta);
    EXPECT_GT(verified->meta.size, uint64_t{kEntries} * 256);
  }
  auto source_digest = source->StateDigest(In(absl::Seconds(10)));
  ASSERT_TRUE(source_digest.ok());

  // Restore into an independent node that already holds other data.
  auto target = StartSingle(dir.path() + "/b");
  ASSERT_NE(target, nullptr);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(target->Put(absl::StrFormat("other/%d", i), "x", In(absl::Seconds(5))).ok());
  }
  Restorer restorer(target.get(), dir.path() + "/b", Limits());
  auto spool = restorer.Begin(In(absl::Seconds(5)));
  ASSERT_TRUE(spool.ok()) << spool.status();
  struct stat st;
  ASSERT_EQ(stat((*spool)->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto info = Spool(spool->get(), archive);
  ASSERT_TRUE(info.ok()) << info.status();
  auto result = (*spool)->Apply(In(absl::Seconds(60)));
  ASSERT_TRUE(result.ok()) << result.status();
  spool->reset();
  EXPECT_FALSE(HasSpoolFiles(dir.path() + "/b"));

  auto target_digest = target->StateDigest(In(absl::Seconds(10)));
  ASSERT_TRUE(target_digest.ok());
  EXPECT_EQ(target_digest->second, source_digest->second)
      << "restored state differs from the source";
  EXPECT_FALSE(target->Get("other/0", false, In(absl::Seconds(5)))->has_value());
  EXPECT_EQ(*source->Get("entry/65535", false, In(absl::Seconds(5))),
            *target->Get("entry/65535", false, In(absl::Seconds(5))));
}

TEST(NomadScenario, TruncatedOrForeignArchiveLeavesDataUntouched) {
  TempDir dir;
  auto source = StartSingle(dir.path() + "/a");
  ASSERT_NE(source, nullptr);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(source->Put(absl::StrFormat("s/%d", i), std::string(200, 's'), In(absl::Seconds(5))).ok());
  }
  const std::string archive = dir.path() + "/backup.snap";
  {
    auto out = FileSink::Create(archive, 0600, true);
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(TakeArchive(source.get(), {}, &*out, In(absl::Seconds(10)), nullptr).ok());
    ASSERT_TRUE(out->SyncAndClose().ok());
  }
  const size_t size = std::filesystem::file_size(archive);

  auto target = StartSingle(dir.path() + "/c");
  ASSERT_NE(target, nullptr);
  ASSERT_TRUE(target->Put("mine", "precious", In(absl::Seconds(5))).ok());
  auto before = target->StateDigest(In(absl::Seconds(5)));

  Restorer restorer(target.get(), dir.path() + "/c", Limits());
  for (size_t cut : {size / 2, size - 1}) {
    auto spool = restorer.Begin(In(absl::Seconds(5)));
    ASSERT_TRUE(spool.ok());
    auto info = Spool(spool->get(), archive, cut);
    EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss) << info.status();
    auto applied = (*spool)->Apply(In(absl::Seconds(5)));
    EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  // Nomad's small.snap is a valid archive, but not this engine's state.
  {
    auto spool = restorer.Begin(In(absl::Seconds(5)));
    ASSERT_TRUE(spool.ok());
    auto info = Spool(spool->get(), "external/shared/interop/small.snap");
    ASSERT_TRUE(info.ok()) << info.status();
    auto applied = (*spool)->Apply(In(absl::Seconds(5)));
    EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(applied.status().message().find("Nomad"), std::string::npos)
        << applied.status();
  }
  EXPECT_FALSE(HasSpoolFiles(dir.path() + "/c"));
  auto after = target->StateDigest(In(absl::Seconds(5)));
  EXPECT_EQ(before->second, after->second);
  EXPECT_EQ(target->Get("mine", false, In(absl::Seconds(5)))->value_or(""), "precious");
}

}  // namespace
}  // namespace snapshot
