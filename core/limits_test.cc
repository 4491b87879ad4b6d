#include "core/limits.h"

#include "base/snapshot_meta.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace {

TEST(Limits, EngineDefaultsAndTheArchiveLimitFollowsTheState) {
  auto embedded = MakeLimits(kEngineEmbedded, 0, 0);
  ASSERT_TRUE(embedded.ok());
  EXPECT_EQ(embedded->max_state_bytes, kEmbeddedMaxStateBytes);
  EXPECT_EQ(embedded->max_archive_bytes, ArchiveBytesFor(kEmbeddedMaxStateBytes));
  // Twice the largest state and the snapshot's envelope stay under what
  // libraft 0.15 can read back in one read(2).
  EXPECT_LT(2 * kEmbeddedMaxStateBytes + (64 << 10), uint64_t{0x7ffff000});
  // etcd's own recommended maximum database: a 1.4 GB member is inside it.
  auto etcd = MakeLimits(kEngineEtcd, 0, 0);
  ASSERT_TRUE(etcd.ok());
  EXPECT_EQ(etcd->max_state_bytes, uint64_t{8} << 30);
  EXPECT_TRUE(etcd->CheckState(1395548192).ok());
  auto set = MakeLimits(kEngineEmbedded, 100 << 20, 0);
  EXPECT_EQ(set->max_archive_bytes, ArchiveBytesFor(100 << 20));
}

TEST(Limits, AnArchiveLimitThatCannotHoldTheStateIsRefused) {
  auto l = MakeLimits(kEngineEmbedded, uint64_t{1} << 29, uint64_t{1} << 29);
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(l.status().message().find("--max-archive-bytes"), std::string::npos);
  EXPECT_TRUE(MakeLimits(kEngineEmbedded, uint64_t{1} << 29, uint64_t{64} << 30).ok());
}

// A state the embedded engine could store but never load again is refused
// at start-up (a 2 GiB state's Raft snapshot failed a restart with "short
// read: 2147479552 bytes instead of 2147485455"); etcd has no such ceiling.
TEST(Limits, TheEmbeddedEngineRefusesAStateItsRaftSnapshotsCouldNotHold) {
  EXPECT_TRUE(MakeLimits(kEngineEmbedded, kEmbeddedMaxStateBytes, 0).ok());
  auto over = MakeLimits(kEngineEmbedded, kEmbeddedMaxStateBytes + 1, 0);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(over.status().message().find("use the etcd engine"), std::string::npos) << over.status();
  EXPECT_TRUE(MakeLimits(kEngineEtcd, uint64_t{4} << 30, 0).ok());
}

TEST(Limits, StateCheckSaysWhatTheReaderWouldSay) {
  Limits l;
  l.max_state_bytes = 1000;
  EXPECT_TRUE(l.CheckState(1000).ok());
  absl::Status s = l.CheckState(1001);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message().rfind("state.bin is 1001 bytes, over the limit of 1000", 0), 0u) << s;
  EXPECT_TRUE(Limits().CheckState(UINT64_MAX).ok());  // the default limits nothing
}

TEST(Limits, ChunkSizeAndThreads) {
  EXPECT_EQ(*ChunkSize(0), Limits::kDefaultChunk);
  EXPECT_EQ(*ChunkSize(Limits::kMinChunk), Limits::kMinChunk);
  EXPECT_EQ(ChunkSize(Limits::kMaxChunk + 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChunkSize(1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CompressThreads(3), 3);
  EXPECT_GE(CompressThreads(0), 1);
}

}  // namespace
}  // namespace snapshot
