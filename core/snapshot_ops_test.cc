#include "core/snapshot_ops.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "base/status_macros.h"
#include "base/testing.h"

namespace snapshot {
namespace {

absl::Time Later() { return absl::Now() + absl::Seconds(10); }

// A node whose state is a string; counts what it was asked to do.
class StringNode : public RaftNode {
 public:
  explicit StringNode(std::string engine = "test") : engine_(std::move(engine)) {}
  const char* engine() const override { return engine_.c_str(); }
  absl::StatusOr<NodeStatus> Status(absl::Time) override { return NodeStatus{}; }
  absl::Status CheckLeader(absl::Time) override { return leader; }
  absl::StatusOr<CapturedSnapshot> Snapshot(const SnapshotOptions&, absl::Time) override {
    ++snapshots;
    CapturedSnapshot c;
    c.meta.index = 7;
    c.meta.term = 1;
    c.meta.id = "1-7-0";
    c.meta.engine = engine_;
    c.meta.size = state.size();
    c.state = std::make_unique<StringSource>(state);
    return c;
  }
  absl::StatusOr<RestoreResult> Restore(const SnapshotMeta&, const StateOpener& open,
                                        absl::Time) override {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open());
    state = testing::ReadAll(src.get());
    return RestoreResult{8};
  }
  std::string state = "some state";
  absl::Status leader = absl::OkStatus();
  int snapshots = 0;

 private:
  std::string engine_;
};

std::string Archive(StringNode* node, TakeOptions o = TakeOptions()) {
  std::string out;
  StringSink sink(&out);
  auto info = TakeArchive(node, o, &sink, Later(), nullptr);
  EXPECT_TRUE(info.ok()) << info.status();
  return out;
}

TEST(TakeArchive, RefusesABadLevelBeforeCapturing) {
  StringNode node;
  TakeOptions o;
  o.compression = 10;
  std::string out;
  StringSink sink(&out);
  EXPECT_EQ(TakeArchive(&node, o, &sink, Later(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node.snapshots, 0);
}

// A Take never produces what the same agent's Verify would refuse.
TEST(TakeArchive, RefusesAStateOverTheLimitBeforeAnyByte) {
  StringNode node;
  node.state = std::string(5000, 'x');
  TakeOptions o;
  o.limits.max_state_bytes = 4999;
  std::string out;
  StringSink sink(&out);
  bool announced = false;
  auto info = TakeArchive(&node, o, &sink, Later(), [&](const CapturedSnapshot&) {
    announced = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(info.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(announced);
  EXPECT_TRUE(out.empty());
  o.limits.max_state_bytes = 5000;
  EXPECT_FALSE(Archive(&node, o).empty());
}

TEST(Verifier, RefusesAnArchiveOverTheLimit) {
  StringNode node;
  node.state = std::string(100000, 'y');
  const std::string archive = Archive(&node);
  Limits l;
  l.max_archive_bytes = archive.size() - 1;
  Verifier v(l);
  absl::Status s = v.Feed(archive);
  if (s.ok()) s = v.Finish().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  Verifier ok((Limits()));
  ASSERT_TRUE(ok.Feed(archive).ok());
  EXPECT_TRUE(ok.Finish().ok());
}

TEST(Restorer, OneRestoreAtATimeAndTheSlotComesBack) {
  testing::TempDir dir;
  StringNode node;
  Restorer r(&node, dir.path(), Limits());
  auto first = r.Begin(Later());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(r.Begin(Later()).status().code(), absl::StatusCode::kUnavailable);
  first->reset();
  EXPECT_TRUE(r.Begin(Later()).ok());
  // On a follower: refused before anything is received, the slot free.
  node.leader = absl::FailedPreconditionError("not the leader");
  EXPECT_EQ(r.Begin(Later()).status().code(), absl::StatusCode::kFailedPrecondition);
  node.leader = absl::OkStatus();
  EXPECT_TRUE(r.Begin(Later()).ok());
}

TEST(Restorer, VerifiesThenAppliesAndLeavesNoSpool) {
  testing::TempDir dir;
  StringNode source;
  source.state = "the new state";
  const std::string archive = Archive(&source);
  StringNode node;
  Restorer r(&node, dir.path(), Limits());
  {
    auto spool = r.Begin(Later());
    ASSERT_TRUE(spool.ok());
    EXPECT_EQ((*spool)->CheckEngine().code(), absl::StatusCode::kFailedPrecondition)
        << "nothing is applied before the archive verified";
    ASSERT_TRUE((*spool)->Write(archive).ok());
    ASSERT_TRUE((*spool)->Finish().ok());
    auto applied = (*spool)->Apply(Later());
    ASSERT_TRUE(applied.ok()) << applied.status();
  }
  EXPECT_EQ(node.state, "the new state");
  auto left = ListDir(dir.path());
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << (*left)[0];
}

TEST(Restorer, AnotherEnginesSnapshotIsRefused) {
  testing::TempDir dir;
  StringNode other_source("other");
  const std::string archive = Archive(&other_source);
  StringNode node;
  Restorer r(&node, dir.path(), Limits());
  auto spool = r.Begin(Later());
  ASSERT_TRUE((*spool)->Write(archive).ok());
  ASSERT_TRUE((*spool)->Finish().ok());
  absl::Status s = (*spool)->CheckEngine();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("snapshot of the other engine"), std::string::npos) << s;
  EXPECT_FALSE((*spool)->Apply(Later()).ok());
  EXPECT_EQ(node.state, "some state");
}

TEST(RemoveStaleSpools, OnlyOurPatternOnlyRegularFiles) {
  testing::TempDir dir;
  auto touch = [&](const std::string& name, size_t bytes) {
    std::ofstream(dir.path() + "/" + name) << std::string(bytes, 'z');
  };
  touch(".restore-abc123", 100);   // ours
  touch(".restore-abc12", 1);      // not six characters
  touch("restore-abc123", 1);      // no dot
  touch("keep.snap", 1);
  ASSERT_EQ(mkdir((dir.path() + "/.restore-dir123").c_str(), 0700), 0);  // a directory
  auto done = RemoveStaleSpools(dir.path());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->files, 1);
  EXPECT_EQ(done->bytes, 100u);
  auto left = ListDir(dir.path());
  EXPECT_EQ(left->size(), 4u);
}

}  // namespace
}  // namespace snapshot
