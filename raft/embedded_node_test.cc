// The embedded libraft node, one node at a time: key-value operations,
// durability across restarts, snapshots, restores and start-up errors.
#include "raft/embedded_node.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "raft/kv_state.h"
#include "raft/testing/cluster.h"

namespace snapshot {
namespace {

using testing::FreePort;
using testing::OpenerOf;
using testing::ReadAll;
using testing::TempDir;

absl::Time In(absl::Duration d) { return absl::Now() + d; }

EmbeddedNodeConfig SingleConfig(const std::string& dir, int port = 0,
                                 unsigned threshold = 64) {
  EmbeddedNodeConfig c;
  c.id = 1;
  c.raft_address = absl::StrCat("127.0.0.1:", port ? port : FreePort());
  c.agent_address = "127.0.0.1:18001";
  c.data_dir = dir + "/data";
  c.snapshot_threshold = threshold;
  c.snapshot_trailing = threshold / 2;
  return c;
}

std::unique_ptr<EmbeddedNode> StartLeader(const EmbeddedNodeConfig& c) {
  auto node = EmbeddedNode::Start(c);
  EXPECT_TRUE(node.ok()) << node.status();
  if (!node.ok()) return nullptr;
  EXPECT_TRUE((*node)->WaitForLeader(In(absl::Seconds(10))).ok());
  return std::move(*node);
}


TEST(EmbeddedNode, KeyValueOperationsAndStatus) {
  TempDir dir;
  auto node = StartLeader(SingleConfig(dir.path()));
  ASSERT_NE(node, nullptr);
  auto st = node->Status(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->role, Role::kLeader);
  EXPECT_EQ(st->leader_id, 1u);
  EXPECT_EQ(st->leader_agent_address, "127.0.0.1:18001");
  EXPECT_EQ(st->members.size(), 1u);

  auto i1 = node->Put("user/1", "alice", In(absl::Seconds(5)));
  ASSERT_TRUE(i1.ok()) << i1.status();
  auto i2 = node->Put("user/2", "bob", In(absl::Seconds(5)));
  ASSERT_TRUE(i2.ok());
  EXPECT_GT(*i2, *i1);
  EXPECT_EQ(**node->Get("user/1", false, In(absl::Seconds(5))), "alice");
  EXPECT_FALSE(node->Get("user/3", false, In(absl::Seconds(5)))->has_value());
  ListOptions lo;
  lo.prefix = "user/";
  lo.limit = 10;
  auto list = node->List(lo, In(absl::Seconds(5)));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->entries.size(), 2u);
  EXPECT_EQ(list->entries[1].second, "bob");
  ASSERT_TRUE(node->Delete("user/1", In(absl::Seconds(5))).ok());
  EXPECT_FALSE(node->Get("user/1", true, In(absl::Seconds(5)))->has_value());

  EXPECT_EQ(node->Put("", "x", In(absl::Seconds(5))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node->Put("k", std::string(kv::kMaxValueBytes + 1, 'x'),
                      In(absl::Seconds(5)))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  auto late = node->Put("k", "v", absl::Now() - absl::Seconds(1));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  st = node->Status(absl::Now() + absl::Seconds(10));
  EXPECT_GE(st->applied_index, *i2);
  EXPECT_GE(st->term, 1u);
}

TEST(EmbeddedNode, WritesSurviveRestartAcrossEngineSnapshots) {
  TempDir dir;
  EmbeddedNodeConfig c = SingleConfig(dir.path(), 0, /*threshold=*/32);
  {
    auto node = StartLeader(c);
    ASSERT_NE(node, nullptr);
    // Well past the snapshot threshold: the engine takes its own snapshots
    // (serialized off the loop) and truncates the log.
    for (int i = 0; i < 300; ++i) {
      ASSERT_TRUE(node->Put(absl::StrCat("k", i), absl::StrCat("v", i),
                            In(absl::Seconds(5)))
                      .ok());
    }
    ASSERT_TRUE(node->Delete("k7", In(absl::Seconds(5))).ok());
    node->Stop();
  }
  bool has_snapshot = false;
  for (const auto& e : std::filesystem::directory_iterator(c.data_dir)) {
    if (e.path().filename().string().rfind("snapshot-", 0) == 0) {
      has_snapshot = true;
    }
  }
  EXPECT_TRUE(has_snapshot) << "the engine wrote no snapshot";
  auto node = StartLeader(c);
  ASSERT_NE(node, nullptr);
  for (int i = 0; i < 300; ++i) {
    auto v = node->Get(absl::StrCat("k", i), false, In(absl::Seconds(5)));
    ASSERT_TRUE(v.ok()) << v.status();
    if (i == 7) {
      EXPECT_FALSE(v->has_value());
    } else {
      ASSERT_TRUE(v->has_value()) << "k" << i << " lost after restart";
      EXPECT_EQ(**v, absl::StrCat("v", i));
    }
  }
}

TEST(EmbeddedNode, SnapshotThenRestoreBringsOldDataBack) {
  TempDir dir;
  auto node = StartLeader(SingleConfig(dir.path()));
  ASSERT_NE(node, nullptr);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(node->Put(absl::StrCat("a/", i), "old", In(absl::Seconds(5))).ok());
  }
  auto snap = node->Snapshot({}, In(absl::Seconds(5)));
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_FALSE(snap->stale);
  EXPECT_GE(snap->meta.index, 50u);
  EXPECT_GE(snap->meta.term, 1u);
  ASSERT_EQ(snap->meta.servers.size(), 1u);
  EXPECT_EQ(snap->meta.servers[0].id, "1");
  std::string bytes = ReadAll(snap->state.get());
  EXPECT_EQ(bytes.size(), snap->meta.size);
  auto decoded = kv::DecodeState(bytes);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->count(), 50u);

  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(node->Put(absl::StrCat("a/", i), "new", In(absl::Seconds(5))).ok());
  }
  ASSERT_TRUE(node->Put("b/extra", "x", In(absl::Seconds(5))).ok());
  auto restored = node->Restore(snap->meta, OpenerOf(bytes), In(absl::Seconds(10)));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_GT(restored->index, snap->meta.index);
  EXPECT_EQ(**node->Get("a/7", false, In(absl::Seconds(5))), "old");
  EXPECT_FALSE(node->Get("b/extra", false, In(absl::Seconds(5)))->has_value());
  auto again = node->Snapshot({}, In(absl::Seconds(5)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ReadAll(again->state.get()), bytes) << "restored state differs";
}

TEST(EmbeddedNode, RestoreRefusesForeignOrMismatchedStateAndChangesNothing) {
  TempDir dir;
  auto node = StartLeader(SingleConfig(dir.path()));
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Put("keep", "me", In(absl::Seconds(5))).ok());
  auto before = node->StateDigest(In(absl::Seconds(5)));

  // A Nomad state.bin (msgpack), as in ../shared/interop/small.snap.
  SnapshotMeta meta;
  std::string nomad("\xdc\x00\x10\xda\x00\x40", 6);
  meta.size = nomad.size();
  auto r = node->Restore(meta, OpenerOf(nomad), In(absl::Seconds(5)));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("another system"), std::string::npos)
      << r.status();

  // Valid state, wrong announced size.
  kv::KvState s;
  s.Put("x", "y");
  std::string good = ReadAll(s.View().NewSource().get());
  meta.size = good.size() + 1;
  r = node->Restore(meta, OpenerOf(good), In(absl::Seconds(5)));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  auto after = node->StateDigest(In(absl::Seconds(5)));
  EXPECT_EQ(before->second, after->second);
  EXPECT_EQ(**node->Get("keep", false, In(absl::Seconds(5))), "me");
}

TEST(EmbeddedNode, SnapshotIsConsistentUnderConcurrentWrites) {
  TempDir dir;
  auto node = StartLeader(SingleConfig(dir.path(), 0, 1024));
  ASSERT_NE(node, nullptr);
  std::mutex mu;
  std::map<std::string, uint64_t> acked;  // key -> index of its Put
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        std::string key = absl::StrCat("w", t, "/", i);
        auto idx = node->Put(key, "v", In(absl::Seconds(10)));
        if (!idx.ok()) continue;
        std::lock_guard<std::mutex> l(mu);
        acked[key] = *idx;
      }
    });
  }
  // Waits until the writers have had `n` more writes acknowledged: the
  // snapshots are taken with writes in flight, however fast the machine.
  auto wait_for_more = [&](size_t n) {
    size_t target;
    {
      std::lock_guard<std::mutex> l(mu);
      target = acked.size() + n;
    }
    for (absl::Time until = In(absl::Seconds(30)); absl::Now() < until;) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (acked.size() >= target) return true;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    return false;
  };
  std::vector<CapturedSnapshot> snaps;
  for (int s = 0; s < 5; ++s) {
    ASSERT_TRUE(wait_for_more(100));
    auto snap = node->Snapshot({}, In(absl::Seconds(10)));
    ASSERT_TRUE(snap.ok()) << snap.status();
    snaps.push_back(std::move(*snap));
  }
  ASSERT_TRUE(wait_for_more(100));  // writes after the last snapshot too
  stop = true;
  for (auto& w : writers) w.join();
  for (auto& snap : snaps) {
    auto state = kv::DecodeState(ReadAll(snap.state.get()));
    ASSERT_TRUE(state.ok());
    size_t expected = 0;
    for (const auto& [key, index] : acked) {
      bool in_snapshot = state->Get(key).has_value();
      EXPECT_EQ(in_snapshot, index <= snap.meta.index)
          << key << " written at " << index << ", snapshot at "
          << snap.meta.index;
      if (index <= snap.meta.index) ++expected;
    }
    EXPECT_EQ(state->count(), expected);
  }
}

TEST(EmbeddedNode, BindsWhereToldWhileAdvertisingAnotherAddress) {
  TempDir dir;
  EmbeddedNodeConfig c = SingleConfig(dir.path());
  const int port = FreePort();
  // Advertised as an address this machine does not have (a Service IP).
  c.raft_address = absl::StrCat("10.255.255.1:", port);
  c.raft_bind_address = absl::StrCat("127.0.0.1:", port + 1);
  EXPECT_EQ(EmbeddedNode::Start(c).status().code(),
            absl::StatusCode::kInvalidArgument);  // ports differ
  c.raft_bind_address = absl::StrCat("127.0.0.1:", port);
  auto node = StartLeader(c);
  ASSERT_NE(node, nullptr);
  EXPECT_TRUE(node->Put("k", "v", In(absl::Seconds(5))).ok());
  auto st = node->Status(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->raft_address, c.raft_address);
}

TEST(EmbeddedNode, ClearStartupErrors) {
  TempDir dir;
  // Parent of the data directory missing.
  EmbeddedNodeConfig c = SingleConfig(dir.path());
  c.data_dir = dir.path() + "/no/such/parent";
  auto n = EmbeddedNode::Start(c);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("cannot create data directory"),
            std::string::npos)
      << n.status();
  // Data directory is a file.
  std::ofstream(dir.path() + "/file") << "x";
  c.data_dir = dir.path() + "/file";
  n = EmbeddedNode::Start(c);
  EXPECT_NE(n.status().message().find("not a directory"), std::string::npos)
      << n.status();
  // Port in use.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&sa), &len);
  c = SingleConfig(dir.path(), ntohs(sa.sin_port));
  n = EmbeddedNode::Start(c);
  close(fd);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("already in use"), std::string::npos)
      << n.status();
  // Names are not resolved by the transport.
  c = SingleConfig(dir.path());
  c.raft_address = "localhost:7001";
  c.peers.clear();
  EXPECT_EQ(EmbeddedNode::Start(c).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The peer list must contain this node.
  c = SingleConfig(dir.path());
  c.peers = *ParsePeers("2=127.0.0.1:7002");
  EXPECT_EQ(EmbeddedNode::Start(c).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParsePeers, AcceptsTheDocumentedFormAndNamesMistakes) {
  auto p = ParsePeers("1=127.0.0.1:7001@127.0.0.1:8001,2=127.0.0.1:7002");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].agent_address, "127.0.0.1:8001");
  EXPECT_EQ((*p)[1].raft_address, "127.0.0.1:7002");
  EXPECT_TRUE((*p)[1].agent_address.empty());
  for (const char* bad :
       {"", "1", "x=127.0.0.1:1", "0=127.0.0.1:1", "1=127.0.0.1",
        "1=127.0.0.1:99999", "1=127.0.0.1:1,1=127.0.0.1:2",
        "1=127.0.0.1:1,2=127.0.0.1:1", "1=127.0.0.1:1@nope"}) {
    auto r = ParsePeers(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParsePeers("1=127.0.0.1").status().message().find("\"1=127.0.0.1\""),
            std::string::npos);
}

}  // namespace
}  // namespace snapshot
