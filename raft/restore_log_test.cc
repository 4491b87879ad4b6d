// RestoreThroughLog against a log whose every proposal and outcome the test
// controls: the order of the entries, what a fault at each point leaves
// behind, and a commit whose answer is lost but which took effect.
#include "raft/restore_log.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "base/io.h"
#include "raft/command.h"
#include "raft/kv_fsm.h"
#include "raft/kv_state.h"

namespace snapshot {
namespace {

absl::Time Later() { return absl::Now() + absl::Seconds(10); }

// Applies nothing; records each proposal's command type and answers as told.
class FakeLog : public ReplicatedLog {
 public:
  absl::Status CheckLeader(absl::Time) override { return leader; }
  std::shared_ptr<Waiter<ApplyOutcome>> ProposeAsync(std::string entry) override {
    auto w = std::make_shared<Waiter<ApplyOutcome>>();
    absl::StatusOr<kv::Command> c = kv::DecodeCommand(entry);
    EXPECT_TRUE(c.ok()) << c.status();
    std::lock_guard<std::mutex> l(mu);
    const int n = static_cast<int>(types.size());
    types.push_back(c.ok() ? c->type : 0);
    if (c.ok() && c->type == kv::Command::kRestoreCommit) committed_id = c->restore_id;
    if (n == fail_at) {
      w->Set(fail_with);
    } else {
      w->Set(ApplyOutcome{static_cast<uint64_t>(100 + n), kv::kApplied});
    }
    return w;
  }
  absl::StatusOr<std::pair<bool, uint64_t>> RestoreCommitted(const std::string& id,
                                                              absl::Time) override {
    std::lock_guard<std::mutex> l(mu);
    return std::make_pair(commit_took_effect && id == committed_id, uint64_t{777});
  }

  absl::Status leader = absl::OkStatus();
  int fail_at = -1;  // the proposal (0-based) that fails
  absl::Status fail_with = absl::UnavailableError("leadership lost");
  bool commit_took_effect = false;
  std::mutex mu;
  std::vector<int> types;
  std::string committed_id;
};

// A valid state of the embedded engine, `entries` values of `value_bytes`.
std::string State(int entries, size_t value_bytes) {
  kv::KvState s;
  for (int i = 0; i < entries; ++i) {
    s.Put(absl::StrCat("key/", i), std::string(value_bytes, static_cast<char>('a' + i % 26)));
  }
  std::unique_ptr<ByteSource> src = s.View().NewSource();
  std::string out;
  char buf[65536];
  for (;;) {
    size_t n = *src->Read(buf, sizeof(buf));
    if (n == 0) return out;
    out.append(buf, n);
  }
}

StateOpener Opener(const std::string* state) {
  return [state]() -> absl::StatusOr<std::unique_ptr<ByteSource>> {
    return std::unique_ptr<ByteSource>(new StringSource(*state));
  };
}

SnapshotMeta MetaOf(const std::string& state) {
  SnapshotMeta m;
  m.size = state.size();
  m.engine = kEngineEmbedded;
  return m;
}

int Count(const std::vector<int>& types, int type) {
  return static_cast<int>(std::count(types.begin(), types.end(), type));
}

TEST(RestoreThroughLog, BeginChunksThenCommitInOrder) {
  FakeLog log;
  // Several chunks of 4 MiB: 5 x 1 MiB values.
  const std::string state = State(5 << 2, 1 << 20);
  auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state), Later());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_GE(log.types.size(), 3u);
  EXPECT_EQ(log.types.front(), kv::Command::kRestoreBegin);
  EXPECT_EQ(log.types.back(), kv::Command::kRestoreCommit);
  const int chunks = Count(log.types, kv::Command::kRestoreChunk) +
                     Count(log.types, kv::Command::kRestoreChunkDeflated);
  EXPECT_EQ(chunks, static_cast<int>((state.size() + kv::kRestoreChunkBytes - 1) /
                                     kv::kRestoreChunkBytes));
  EXPECT_EQ(Count(log.types, kv::Command::kRestoreAbort), 0);
  EXPECT_EQ(r->index, 100 + log.types.size() - 1);  // the commit's index
}

// The hook runs once every chunk is applied here and before the commit is
// proposed; its error aborts the restore (the safety snapshot that could not
// be stored).
TEST(RestoreThroughLog, BeforeCommitRunsAfterTheChunksAndItsErrorAborts) {
  const std::string state = State(12, 1 << 20);
  for (bool fail : {false, true}) {
    FakeLog log;
    std::vector<int> seen;
    auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state), Later(), [&]() {
      std::lock_guard<std::mutex> l(log.mu);
      seen = log.types;
      return fail ? absl::ResourceExhaustedError("the catalog's disk is full") : absl::OkStatus();
    });
    ASSERT_FALSE(seen.empty()) << fail;
    EXPECT_EQ(Count(seen, kv::Command::kRestoreCommit), 0);
    EXPECT_EQ(Count(seen, kv::Command::kRestoreChunk) + Count(seen, kv::Command::kRestoreChunkDeflated),
              static_cast<int>((state.size() + kv::kRestoreChunkBytes - 1) / kv::kRestoreChunkBytes));
    if (fail) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
      EXPECT_EQ(Count(log.types, kv::Command::kRestoreCommit), 0);
      EXPECT_EQ(log.types.back(), kv::Command::kRestoreAbort);
    } else {
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(log.types.back(), kv::Command::kRestoreCommit);
    }
  }
}

TEST(RestoreThroughLog, OnAFollowerNothingIsProposed) {
  FakeLog log;
  log.leader = absl::FailedPreconditionError("not the leader; the leader is node 2");
  const std::string state = State(3, 100);
  auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(log.types.empty());
}

TEST(RestoreThroughLog, AForeignStateIsRefusedBeforeAnyProposal) {
  FakeLog log;
  const std::string state = "this is not a key-value state at all, but a Nomad one";
  auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_TRUE(log.types.empty());
}

TEST(RestoreThroughLog, AFailedChunkIsFollowedByAnAbortAndNoCommit) {
  FakeLog log;
  log.fail_at = 2;  // begin, chunk, *chunk*
  const std::string state = State(12, 1 << 20);
  auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(Count(log.types, kv::Command::kRestoreCommit), 0);
  EXPECT_EQ(log.types.back(), kv::Command::kRestoreAbort);
}

TEST(RestoreThroughLog, AMetadataSizeThatLiesIsRefusedWithAnAbort) {
  FakeLog log;
  const std::string state = State(3, 100);
  SnapshotMeta meta = MetaOf(state);
  meta.size += 10;
  auto r = RestoreThroughLog(&log, meta, Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_EQ(Count(log.types, kv::Command::kRestoreCommit), 0);
  EXPECT_EQ(log.types.back(), kv::Command::kRestoreAbort);
}

// "Leadership lost" does not mean "not applied".
TEST(RestoreThroughLog, ALostCommitAnswerIsConfirmedFromTheStateMachine) {
  const std::string state = State(3, 100);
  {
    FakeLog log;
    log.fail_at = 2;  // begin, chunk, *commit*
    log.commit_took_effect = true;
    auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state), Later());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->index, 777u);
  }
  {
    FakeLog log;
    log.fail_at = 2;
    log.commit_took_effect = false;
    auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state),
                               absl::Now() + absl::Milliseconds(300));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
    EXPECT_NE(r.status().message().find("may or may not"), std::string::npos);
  }
}

}  // namespace
}  // namespace snapshot
