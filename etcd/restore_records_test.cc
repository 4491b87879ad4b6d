#include "etcd/restore_records.h"

#include <errno.h>

#include <algorithm>
#include <thread>

#include "base/atomic_file.h"
#include "base/testing.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace {

TEST(RestoreRecords, SaveLoadForget) {
  testing::TempDir dir;
  RestoreRecords records(dir.path());
  ASSERT_TRUE(records.Save({"abc123", RestorePhase::kStopped, "m2"}).ok());
  auto r = records.Load("abc123");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->phase, RestorePhase::kStopped);
  EXPECT_EQ(r->coordinator, "m2");
  EXPECT_EQ(records.Participating(), std::vector<std::string>{"abc123"});
  records.Forget("abc123");
  EXPECT_EQ(records.Load("abc123").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(records.Participating().empty());
}

TEST(RestoreRecords, Decisions) {
  testing::TempDir dir;
  RestoreRecords records(dir.path());
  EXPECT_FALSE(records.HasDecision("d1"));
  bool decided = false;
  ASSERT_TRUE(records.SaveDecision({"d1", {"m1", "m2", "m3"}, 42}, &decided).ok());
  EXPECT_TRUE(decided);
  EXPECT_TRUE(records.HasDecision("d1"));
  auto d = records.LoadDecision("d1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->members, (std::vector<std::string>{"m1", "m2", "m3"}));
  EXPECT_EQ(d->revision, 42);
  EXPECT_EQ(records.Decided(), std::vector<std::string>{"d1"});
  records.RemoveDecision("d1");
  EXPECT_FALSE(records.HasDecision("d1"));
}

TEST(RestoreRecords, AnUnreadableRecordIsDataLoss) {
  testing::TempDir dir;
  RestoreRecords records(dir.path());
  ASSERT_TRUE(WriteFileAtomically(records.Path("x", "state"), "{\"id\": 1}").ok());
  EXPECT_EQ(records.Load("x").status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteFileAtomically(records.Path("y", "state"),
                                  R"({"id":"y","phase":"dancing","coordinator":"m1"})")
                  .ok());
  EXPECT_EQ(records.Load("y").status().code(), absl::StatusCode::kDataLoss);
}

// The decision is written through the file seam: a failing directory fsync
// is reported (the caller must not treat the decision as durable yet).
// A decision is either not recorded at all (abort is safe) or recorded and
// standing: a failed directory fsync after the rename is retried, and never
// reported as "nothing decided" (issue 20, 2).
TEST(RestoreRecords, ADecisionIsNeverBothRecordedAndAbortable) {
  testing::TempDir dir;
  testing::FaultEnv env;
  RestoreRecords records(dir.path(), &env);
  bool decided = true;
  env.rename_errno = EIO;  // never in place
  EXPECT_FALSE(records.SaveDecision({"d1", {"m1"}, 0}, &decided).ok());
  EXPECT_FALSE(decided);
  EXPECT_FALSE(records.HasDecision("d1"));
  env.rename_errno = 0;

  env.syncdir_errno = EIO;  // in place, never durable
  absl::Status s = records.SaveDecision({"d2", {"m1"}, 0}, &decided);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(decided) << "a decision in place stands: it must not be aborted";
  EXPECT_TRUE(records.HasDecision("d2"));
  EXPECT_NE(s.message().find("renamed, but"), std::string::npos) << s;

  // The fsync fails once, then works: the decision is durable, OK.
  std::thread heal([&] {
    absl::SleepFor(absl::Milliseconds(50));
    env.syncdir_errno = 0;
  });
  env.syncdir_errno = EIO;
  s = records.SaveDecision({"d3", {"m1"}, 0}, &decided);
  heal.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(decided);
}

}  // namespace
}  // namespace snapshot
