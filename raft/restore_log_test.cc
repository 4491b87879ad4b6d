// RestoreThroughLog against a log whose every proposal and outcome the test
// controls: the order of the entries, what a fault at each point leaves
// behind, and a commit whose answer is lost but which took effect.
#include "raft/restore_log.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <mutex>
#include <random>
#include <vector>

#include "base/io.h"
#include "base/testing.h"
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
    entries.push_back(entry);
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
  std::vector<std::string> entries;
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

// As State, with random values (which no deflate shrinks).
std::string RandomState(int entries, size_t value_bytes) {
  kv::KvState s;
  std::mt19937_64 rng(entries);
  for (int i = 0; i < entries; ++i) {
    std::string v(value_bytes, '\0');
    for (char& c : v) c = static_cast<char>(rng());
    s.Put(absl::StrCat("key/", i), std::move(v));
  }
  return testing::ReadAll(s.View().NewSource().get());
}

StateOpener Opener(const std::string* state, int* opened = nullptr) {
  return [state, opened]() -> absl::StatusOr<std::unique_ptr<ByteSource>> {
    if (opened != nullptr) ++*opened;
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

// Every case runs twice: the state read from its opener once the archive
// has verified, and the entries prepared while the upload arrived
// (PreparedRestore, fed in uneven pieces as an upload would).
class RestoreThroughLogTest : public ::testing::TestWithParam<bool> {
 protected:
  absl::StatusOr<RestoreResult> Restore(FakeLog* log, const SnapshotMeta& meta,
                                        const StateOpener& open, absl::Time deadline,
                                        const BeforeCommit& before_commit = nullptr) {
    if (!GetParam()) return RestoreThroughLog(log, meta, open, deadline, before_commit);
    absl::StatusOr<std::unique_ptr<ByteSource>> src = open();
    EXPECT_TRUE(src.ok());
    std::string state = testing::ReadAll(src->get());
    std::unique_ptr<PreparedRestore> p = Prepare(state);
    return RestoreThroughLog(log, meta, open, deadline, before_commit, p.get());
  }

  std::unique_ptr<PreparedRestore> Prepare(absl::string_view state) {
    auto p = PreparedRestore::Create(dir_.path());
    EXPECT_TRUE(p.ok()) << p.status();
    for (size_t at = 0, step = 1; at < state.size(); at += step, step = step * 7 % 300007 + 1) {
      EXPECT_TRUE((*p)->Write(state.substr(at, step)).ok());
    }
    (*p)->Verified(Digest{});
    return std::move(*p);
  }

  testing::TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(FromTheSpoolOrPrepared, RestoreThroughLogTest, ::testing::Bool());

TEST_P(RestoreThroughLogTest, BeginChunksThenCommitInOrder) {
  FakeLog log;
  // Several chunks of 4 MiB: 5 x 1 MiB values.
  const std::string state = State(5 << 2, 1 << 20);
  auto r = Restore(&log, MetaOf(state), Opener(&state), Later());
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
TEST_P(RestoreThroughLogTest, BeforeCommitRunsAfterTheChunksAndItsErrorAborts) {
  const std::string state = State(12, 1 << 20);
  for (bool fail : {false, true}) {
    FakeLog log;
    std::vector<int> seen;
    auto r = Restore(&log, MetaOf(state), Opener(&state), Later(), [&]() {
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

TEST_P(RestoreThroughLogTest, OnAFollowerNothingIsProposed) {
  FakeLog log;
  log.leader = absl::FailedPreconditionError("not the leader; the leader is node 2");
  const std::string state = State(3, 100);
  auto r = Restore(&log, MetaOf(state), Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(log.types.empty());
}

TEST_P(RestoreThroughLogTest, AForeignStateIsRefusedBeforeAnyProposal) {
  FakeLog log;
  const std::string state = "this is not a key-value state at all, but a Nomad one";
  auto r = Restore(&log, MetaOf(state), Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_TRUE(log.types.empty());
}

TEST_P(RestoreThroughLogTest, AFailedChunkIsFollowedByAnAbortAndNoCommit) {
  FakeLog log;
  log.fail_at = 2;  // begin, chunk, *chunk*
  const std::string state = State(12, 1 << 20);
  auto r = Restore(&log, MetaOf(state), Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(Count(log.types, kv::Command::kRestoreCommit), 0);
  EXPECT_EQ(log.types.back(), kv::Command::kRestoreAbort);
}

TEST_P(RestoreThroughLogTest, AMetadataSizeThatLiesIsRefusedWithAnAbort) {
  FakeLog log;
  const std::string state = State(3, 100);
  SnapshotMeta meta = MetaOf(state);
  meta.size += 10;
  auto r = Restore(&log, meta, Opener(&state), Later());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_EQ(Count(log.types, kv::Command::kRestoreCommit), 0);
  EXPECT_EQ(log.types.back(), kv::Command::kRestoreAbort);
}

// "Leadership lost" does not mean "not applied".
TEST_P(RestoreThroughLogTest, ALostCommitAnswerIsConfirmedFromTheStateMachine) {
  const std::string state = State(3, 100);
  {
    FakeLog log;
    log.fail_at = 2;  // begin, chunk, *commit*
    log.commit_took_effect = true;
    auto r = Restore(&log, MetaOf(state), Opener(&state), Later());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->index, 777u);
  }
  {
    FakeLog log;
    log.fail_at = 2;
    log.commit_took_effect = false;
    auto r = Restore(&log, MetaOf(state), Opener(&state),
                               absl::Now() + absl::Milliseconds(300));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
    EXPECT_NE(r.status().message().find("may or may not"), std::string::npos);
  }
}

// The prepared entries are the ones the spool would give, byte for byte but
// for the restore id, and once prepared the spool is not read at all.
TEST(PreparedRestore, ProposesTheSameEntriesWithoutReadingTheSpool) {
  testing::TempDir dir;
  const std::string state = State(40, 300 << 10);  // 12 MiB: several chunks
  FakeLog plain;
  ASSERT_TRUE(RestoreThroughLog(&plain, MetaOf(state), Opener(&state), Later()).ok());
  auto p = PreparedRestore::Create(dir.path());
  ASSERT_TRUE(p.ok()) << p.status();
  for (size_t at = 0; at < state.size(); at += 65536) ASSERT_TRUE((*p)->Write(state.substr(at, 65536)).ok());
  (*p)->Verified(Digest{});
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));  // the scratch file has no name
  FakeLog prepared;
  int opened = 0;
  ASSERT_TRUE(RestoreThroughLog(&prepared, MetaOf(state), Opener(&state, &opened), Later(),
                                nullptr, p->get())
                  .ok());
  EXPECT_EQ(opened, 0);
  ASSERT_EQ(plain.entries.size(), prepared.entries.size());
  EXPECT_GT(plain.entries.size(), 4u);
  for (size_t i = 0; i < plain.entries.size(); ++i) {
    absl::StatusOr<kv::Command> a = kv::DecodeCommand(plain.entries[i]);
    absl::StatusOr<kv::Command> b = kv::DecodeCommand(prepared.entries[i]);
    ASSERT_TRUE(a.ok() && b.ok()) << i;
    EXPECT_EQ(a->type, b->type) << i;
    EXPECT_EQ(a->offset, b->offset) << i;
    EXPECT_EQ(a->size, b->size) << i;
    EXPECT_EQ(a->raw_size, b->raw_size) << i;
    EXPECT_EQ(a->crc64, b->crc64) << i;
    EXPECT_TRUE(a->data == b->data) << i;
    EXPECT_EQ(b->restore_id, prepared.committed_id) << i;
  }
}

// A preparation that could not finish is no error of the restore: a state
// of another format, an upload that stopped short, a disk that refused the
// scratch file's writes. The state is read from the spool instead, with
// that path's verdict.
TEST(PreparedRestore, AFailedPreparationFallsBackToTheSpool) {
  testing::TempDir dir;
  const std::string state = State(40, 300 << 10);
  {  // another format: the spool's error, nothing proposed
    const std::string foreign = "this is not a key-value state at all, but a Nomad one";
    auto p = PreparedRestore::Create(dir.path());
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE((*p)->Write(foreign).ok());  // not the upload's error
    (*p)->Verified(Digest{});
    FakeLog log;
    int opened = 0;
    auto r = RestoreThroughLog(&log, MetaOf(foreign), Opener(&foreign, &opened), Later(),
                               nullptr, p->get());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
    EXPECT_EQ(opened, 1);
    EXPECT_TRUE(log.types.empty());
  }
  {  // never verified (the upload failed): not used
    auto p = PreparedRestore::Create(dir.path());
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE((*p)->Write(state).ok());
    FakeLog log;
    int opened = 0;
    auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state, &opened), Later(), nullptr,
                               p->get());
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(opened, 1);
  }
  {  // the scratch file's disk refuses writes past 1 MiB (EFBIG, as ENOSPC would)
    const std::string state = RandomState(10, 1 << 20);
    struct rlimit old;
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old;
    small.rlim_cur = 1 << 20;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    auto p = PreparedRestore::Create(dir.path());
    ASSERT_TRUE(p.ok());
    for (size_t at = 0; at < state.size(); at += 65536) {
      EXPECT_TRUE((*p)->Write(state.substr(at, 65536)).ok());
    }
    (*p)->Verified(Digest{});
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    FakeLog log;
    int opened = 0;
    auto r = RestoreThroughLog(&log, MetaOf(state), Opener(&state, &opened), Later(), nullptr,
                               p->get());
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(opened, 1);
    EXPECT_EQ(log.types.back(), kv::Command::kRestoreCommit);
  }
}

}  // namespace
}  // namespace snapshot
