#include "etcd/restore_records.h"

#include <errno.h>

#include <algorithm>

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
  ASSERT_TRUE(records.SaveDecision({"d1", {"m1", "m2", "m3"}, 42}).ok());
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
TEST(RestoreRecords, ADecisionWhoseDirectorySyncFailsIsReported) {
  testing::TempDir dir;
  testing::FaultEnv env;
  env.syncdir_errno = EIO;
  RestoreRecords records(dir.path(), &env);
  absl::Status s = records.SaveDecision({"d2", {"m1"}, 0});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("renamed, but"), std::string::npos) << s;
}

}  // namespace
}  // namespace snapshot
