#include "core/snapshot_ops.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "archive/gzip.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/testing.h"
#include "core/testing.h"

namespace snapshot {
namespace {

absl::Time Later() { return absl::Now() + absl::Seconds(10); }

using testing::StringNode;

std::string Archive(StringNode* node, TakeOptions o = TakeOptions()) {
  std::string out;
  StringSink sink(&out);
  auto info = TakeArchive(node, o, &sink, Later(), nullptr);
  EXPECT_TRUE(info.ok()) << info.status();
  return out;
}

// The compressor's block size (memory) is the caller's: smaller blocks are
// more gzip members of the same state (under 64 KiB: refused, below).
TEST(TakeArchive, BlockBytesSetTheMembers) {
  StringNode node;
  std::string state;
  for (int i = 0; state.size() < (3 << 20); ++i) state += std::to_string(i * 7919) + ",";
  node.state = state;
  auto members = [&](size_t block_bytes) -> uint64_t {
    TakeOptions o;
    o.compression = Compression::Fast();
    o.block_bytes = block_bytes;
    std::string archive = Archive(&node, o);
    std::string out;
    StringSink sink(&out);
    GzipDecoder d(&sink);
    EXPECT_TRUE(d.Feed(archive).ok());
    EXPECT_TRUE(d.AtMemberBoundary());
    StringSource src(archive);
    std::string got;
    StringSink got_sink(&got);
    EXPECT_TRUE(ReadArchive(&src, &got_sink).ok());
    EXPECT_EQ(got, state);
    return d.members();
  };
  const uint64_t big = members(4 << 20), small = members(1 << 20);
  EXPECT_GE(small, 3u);
  EXPECT_GT(small, big);
}

TEST(TakeArchive, RefusesBadOptionsBeforeCapturing) {
  TakeOptions bad_level, small_blocks;
  bad_level.compression = 10;
  small_blocks.block_bytes = 1000;  // under 64 KiB
  for (const TakeOptions& o : {bad_level, small_blocks}) {
    StringNode node;
    std::string out;
    StringSink sink(&out);
    EXPECT_EQ(TakeArchive(&node, o, &sink, Later(), nullptr).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(node.events.empty());
  }
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
  EXPECT_EQ(node.state, "hello");
}

// What a forwarding engine was given (engine/node.h's StateForward).
struct Forwarded {
  std::string bytes;
  bool verified = false;
  Digest sha256{};
  bool destroyed = false;
  StateForward* restored_with = nullptr;
  absl::Status write_error;  // what Write returns
};

// A StringNode that forwards the state as it arrives (as the etcd engine
// sends it to the other members), or refuses to with `refuse`.
class ForwardingNode : public StringNode {
 public:
  class Forward : public StateForward {
   public:
    explicit Forward(Forwarded* f) : f_(f) {}
    ~Forward() override { f_->destroyed = true; }
    absl::Status Write(absl::string_view data) override {
      EXPECT_FALSE(f_->verified) << "bytes after Verified";
      f_->bytes.append(data.data(), data.size());
      return f_->write_error;
    }
    void Verified(const Digest& d) override {
      f_->verified = true;
      f_->sha256 = d;
    }

   private:
    Forwarded* f_;
  };

  absl::StatusOr<std::unique_ptr<StateForward>> ForwardState(const SnapshotMeta&,
                                                             absl::Time) override {
    SA_RETURN_IF_ERROR(refuse);
    return std::unique_ptr<StateForward>(new Forward(&forwarded));
  }
  absl::StatusOr<RestoreResult> RestoreForwarded(const SnapshotMeta& meta,
                                                 const StateOpener& open,
                                                 StateForward* forward, absl::Time deadline,
                                                 const BeforeCommit& before_commit) override {
    forwarded.restored_with = forward;
    return Restore(meta, open, deadline, before_commit);
  }

  Forwarded forwarded;
  absl::Status refuse;
};

TEST(Restorer, AForwardingEngineGetsTheStateAsItArrivesAndItsHashOnceVerified) {
  testing::TempDir dir;
  StringNode source;
  source.state = std::string(300000, 'x') + "the new state";
  const std::string archive = Archive(&source);
  ForwardingNode node;
  Restorer r(&node, dir.path(), Limits());
  {
    auto spool = r.Begin(Later());
    ASSERT_TRUE(spool.ok());
    ASSERT_TRUE((*spool)->Write(archive).ok());
    ASSERT_TRUE((*spool)->Finish().ok());
    EXPECT_EQ(node.forwarded.bytes, source.state);
    EXPECT_TRUE(node.forwarded.verified);
    Sha256 h;
    h.Update(source.state);
    EXPECT_EQ(node.forwarded.sha256, h.Finish());
    ASSERT_TRUE((*spool)->Apply(Later()).ok());
    EXPECT_NE(node.forwarded.restored_with, nullptr);
    EXPECT_FALSE(node.forwarded.destroyed) << "in use until the spool goes";
  }
  EXPECT_TRUE(node.forwarded.destroyed);
  EXPECT_EQ(node.state, source.state);
}

TEST(Restorer, AForwardIsDroppedUnverifiedWhenTheArchiveIsBadOrRefusedByTheEngine) {
  testing::TempDir dir;
  StringNode source;
  source.state = std::string(300000, 'y');
  std::string archive = Archive(&source);
  archive.resize(archive.size() - 40);  // the end cut off: the hashes are missing
  ForwardingNode node;
  Restorer r(&node, dir.path(), Limits());
  {
    auto spool = r.Begin(Later());
    ASSERT_TRUE(spool.ok());
    absl::Status s = (*spool)->Write(archive);
    if (s.ok()) s = (*spool)->Finish().status();
    EXPECT_FALSE(s.ok());
    EXPECT_FALSE(node.forwarded.verified);
    EXPECT_FALSE((*spool)->Apply(Later()).ok());
  }
  EXPECT_TRUE(node.forwarded.destroyed);
  EXPECT_EQ(node.forwarded.restored_with, nullptr);
  EXPECT_EQ(node.state, "hello");

  // An engine that cannot forward (a member busy, say) ends the upload with
  // its error.
  node.refuse = absl::UnavailableError("member m2 is busy with restore 1234; retry later");
  auto spool = r.Begin(Later());
  ASSERT_TRUE(spool.ok());
  absl::Status s = (*spool)->Write(Archive(&source));
  if (s.ok()) s = (*spool)->Finish().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("member m2 is busy"), std::string::npos) << s;

  // Nor does the far end's error while the state goes through.
  node.refuse = absl::OkStatus();
  node.forwarded.write_error =
      absl::UnavailableError("agent of member m3 at 127.0.0.1:1: Socket closed");
  spool->reset();
  spool = r.Begin(Later());
  ASSERT_TRUE(spool.ok());
  s = (*spool)->Write(Archive(&source));
  if (s.ok()) s = (*spool)->Finish().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("member m3 at 127.0.0.1:1: Socket closed"), std::string::npos) << s;
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
