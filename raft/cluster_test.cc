// Three embedded nodes on 127.0.0.1: replication, failover, catch-up,
// cluster-wide restore (also with a follower down), follower answers and
// lost quorum. Every test stops all its nodes (Cluster's destructor).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "raft/embedded_node.h"
#include "raft/command.h"
#include "raft/kv_state.h"
#include "raft/testing/cluster.h"

namespace snapshot {
namespace {

using testing::Cluster;
using testing::OpenerOf;
using testing::ReadAll;

absl::Time In(absl::Duration d) { return absl::Now() + d; }


void PutMany(EmbeddedNode* n, const std::string& prefix, int count,
             const std::string& value = "v") {
  for (int i = 0; i < count; ++i) {
    auto r = n->Put(absl::StrCat(prefix, i), value, In(absl::Seconds(10)));
    ASSERT_TRUE(r.ok()) << r.status();
  }
}

TEST(Cluster, ReplicatesToAllNodes) {
  Cluster c(3);
  ASSERT_TRUE(c.StartAll().ok());
  int leader = c.WaitForLeader();
  ASSERT_GE(leader, 0);
  PutMany(c.node(leader), "r/", 200);
  ASSERT_TRUE(c.WaitForConvergence().ok());
  for (int i = 0; i < 3; ++i) {
    auto v = c.node(i)->Get("r/199", /*allow_stale=*/true, In(absl::Seconds(5)));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->value_or("missing"), "v") << "node " << i + 1;
    auto st = c.node(i)->Status(absl::Now() + absl::Seconds(10));
    EXPECT_EQ(st->members.size(), 3u);
  }
}

TEST(Cluster, FollowersAnswerWithTheLeadersAddress) {
  Cluster c(3);
  ASSERT_TRUE(c.StartAll().ok());
  int leader = c.WaitForLeader();
  ASSERT_GE(leader, 0);
  PutMany(c.node(leader), "f/", 10);
  ASSERT_TRUE(c.WaitForConvergence().ok());
  int follower = (leader + 1) % 3;
  const std::string leader_agent = c.config(leader).agent_address;

  auto snap = c.node(follower)->Snapshot({}, In(absl::Seconds(5)));
  EXPECT_EQ(snap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(snap.status().message().find(leader_agent), std::string::npos)
      << snap.status();

  kv::KvState s;
  s.Put("x", "y");
  std::string state = ReadAll(s.View().NewSource().get());
  SnapshotMeta meta;
  meta.size = state.size();
  auto restore = c.node(follower)->Restore(meta, OpenerOf(state), In(absl::Seconds(5)));
  EXPECT_EQ(restore.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(restore.status().message().find(leader_agent), std::string::npos)
      << restore.status();
  auto put = c.node(follower)->Put("k", "v", In(absl::Seconds(5)));
  EXPECT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);

  // A stale snapshot is allowed when asked for, and says so.
  SnapshotOptions stale;
  stale.allow_stale = true;
  auto s2 = c.node(follower)->Snapshot(stale, In(absl::Seconds(5)));
  ASSERT_TRUE(s2.ok()) << s2.status();
  EXPECT_TRUE(s2->stale);
  auto decoded = kv::DecodeState(ReadAll(s2->state.get()));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->count(), 10u);
}

TEST(Cluster, LeaderFailoverWithWritesContinuing) {
  Cluster c(3);
  ASSERT_TRUE(c.StartAll().ok());
  int leader = c.WaitForLeader();
  ASSERT_GE(leader, 0);
  PutMany(c.node(leader), "before/", 100);
  c.StopNode(leader);
  absl::Time t0 = absl::Now();
  int next = c.WaitForLeader();
  ASSERT_GE(next, 0);
  ASSERT_NE(next, leader);
  std::cout << "new leader after " << absl::ToDoubleMilliseconds(absl::Now() - t0)
            << " ms\n";
  PutMany(c.node(next), "after/", 100);
  // The old leader comes back as a follower and catches up.
  ASSERT_TRUE(c.StartNode(leader).ok());
  ASSERT_GE(c.WaitForLeader(), 0);
  ASSERT_TRUE(c.WaitForConvergence().ok());
  auto v = c.node(leader)->Get("after/99", true, In(absl::Seconds(5)));
  EXPECT_EQ(v->value_or("missing"), "v");
}

TEST(Cluster, StoppedFollowerCatchesUpThroughInstallSnapshot) {
  Cluster c(3, /*snapshot_threshold=*/32);
  ASSERT_TRUE(c.StartAll().ok());
  int leader = c.WaitForLeader();
  ASSERT_GE(leader, 0);
  int follower = (leader + 1) % 3;
  c.StopNode(follower);
  // Far past the threshold: the leader's log no longer holds what the
  // follower misses, so it must be sent a snapshot.
  PutMany(c.node(leader), "gap/", 400, std::string(100, 'g'));
  ASSERT_TRUE(c.StartNode(follower).ok());
  ASSERT_TRUE(c.WaitForConvergence(absl::Seconds(30)).ok());
  auto v = c.node(follower)->Get("gap/0", true, In(absl::Seconds(5)));
  EXPECT_EQ(v->value_or("missing"), std::string(100, 'g'));
}

TEST(Cluster, RestoreReachesAllNodesAlsoWithAFollowerDown) {
  Cluster c(3, /*snapshot_threshold=*/16);
  ASSERT_TRUE(c.StartAll().ok());
  int leader = c.WaitForLeader();
  ASSERT_GE(leader, 0);
  PutMany(c.node(leader), "orig/", 50);
  auto snap = c.node(leader)->Snapshot({}, In(absl::Seconds(5)));
  ASSERT_TRUE(snap.ok());
  std::string saved = ReadAll(snap->state.get());

  // Round 1: all up.
  PutMany(c.node(leader), "later/", 20);
  auto r = c.node(leader)->Restore(snap->meta, OpenerOf(saved), In(absl::Seconds(20)));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(c.WaitForConvergence().ok());
  for (int i = 0; i < 3; ++i) {
    auto v = c.node(i)->Get("later/0", true, In(absl::Seconds(5)));
    EXPECT_FALSE(v->has_value()) << "node " << i + 1;
  }

  // Round 2: a follower is down during a larger restore (several log chunks)
  // and rejoins after; it must end with the same bytes.
  kv::KvState big;
  for (int i = 0; i < 3000; ++i) big.Put(absl::StrCat("big/", i), std::string(3000, 'b'));
  std::string big_state = ReadAll(big.View().NewSource().get());
  ASSERT_GT(big_state.size(), kv::kRestoreChunkBytes);
  SnapshotMeta meta;
  meta.size = big_state.size();
  int follower = (leader + 1) % 3;
  c.StopNode(follower);
  r = c.node(leader)->Restore(meta, OpenerOf(big_state), In(absl::Seconds(30)));
  ASSERT_TRUE(r.ok()) << r.status();
  PutMany(c.node(leader), "post/", 40);  // push past the snapshot threshold
  ASSERT_TRUE(c.StartNode(follower).ok());
  ASSERT_TRUE(c.WaitForConvergence(absl::Seconds(40)).ok());
  auto d = c.node(follower)->StateDigest(In(absl::Seconds(5)));
  ASSERT_TRUE(d.ok());
  auto v = c.node(follower)->Get("big/2999", true, In(absl::Seconds(5)));
  EXPECT_EQ(v->value_or("missing"), std::string(3000, 'b'));
  EXPECT_FALSE(c.node(follower)->Get("orig/0", true, In(absl::Seconds(5)))->has_value());
}

TEST(Cluster, LostQuorumIsUnavailable) {
  Cluster c(3);
  ASSERT_TRUE(c.StartAll().ok());
  int leader = c.WaitForLeader();
  ASSERT_GE(leader, 0);
  c.StopNode((leader + 1) % 3);
  c.StopNode((leader + 2) % 3);
  // Wait until the leader notices (it steps down after an election timeout
  // without a majority).
  for (absl::Time until = In(absl::Seconds(10)); absl::Now() < until;) {
    auto st = c.node(leader)->Status(absl::Now() + absl::Seconds(10));
    if (st.ok() && st->role != Role::kLeader) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  auto put = c.node(leader)->Put("k", "v", In(absl::Seconds(5)));
  EXPECT_EQ(put.status().code(), absl::StatusCode::kUnavailable) << put.status();
  EXPECT_NE(put.status().message().find("quorum"), std::string::npos)
      << put.status();
}

}  // namespace
}  // namespace snapshot
