#include "core/restore_request.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/status_macros.h"
#include "base/testing.h"
#include "core/testing.h"

namespace snapshot {
namespace {

using testing::StringNode;

absl::Time Later() { return absl::Now() + absl::Seconds(10); }

// An archive of `state` and its checksum.
std::pair<std::string, std::string> Archive(const std::string& state) {
  StringNode source;
  source.state = state;
  std::string out;
  StringSink sink(&out);
  auto info = TakeArchive(&source, TakeOptions(), &sink, Later(), nullptr);
  EXPECT_TRUE(info.ok()) << info.status();
  return {out, info->checksum};
}

class RestoreRequestTest : public ::testing::Test {
 protected:
  RestoreRequestTest() : restorer_(&node_, dir_.path(), Limits()) { node_.state = "old"; }

  std::unique_ptr<RestoreRequest> Request(SafetySnapshotFn safety = nullptr,
                                          Catalog* catalog = nullptr) {
    auto spool = restorer_.Begin(Later());
    EXPECT_TRUE(spool.ok()) << spool.status();
    return std::make_unique<RestoreRequest>(std::move(*spool), catalog, std::move(safety));
  }

  testing::TempDir dir_;
  StringNode node_;
  Restorer restorer_;
};

// The safety snapshot is written while the new state is staged (it starts
// once the upload has verified), and the commit waits for it.
TEST_F(RestoreRequestTest, AnUploadIsVerifiedThenStagedBesideTheSafetySnapshotThenCommitted) {
  auto [archive, checksum] = Archive("new state");
  std::vector<std::string> order;
  auto r = Request([&](absl::Time) -> absl::StatusOr<std::string> {
    // Both run at once: the restore has started and waits for this.
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (node_.Events() != std::vector<std::string>{"restore"} && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    EXPECT_EQ(node_.Events(), std::vector<std::string>{"restore"});
    order.push_back(node_.state);  // the state the safety snapshot would keep
    absl::SleepFor(absl::Milliseconds(50));  // a slow disk: the commit still waits
    return std::string("safety-1");
  });
  ASSERT_TRUE(r->Options(checksum, "").ok());
  ASSERT_TRUE(r->Chunk(archive.substr(0, 10)).ok());
  ASSERT_TRUE(r->Chunk(archive.substr(10)).ok());
  ASSERT_TRUE(r->ExpectedChecksum(checksum).ok());
  auto o = r->Finish(Later());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(order, std::vector<std::string>{"old"});
  EXPECT_EQ(node_.Events(), (std::vector<std::string>{"restore", "commit"}));
  EXPECT_EQ(node_.state, "new state");
  EXPECT_EQ(o->safety_id, "safety-1");
  EXPECT_EQ(o->info.checksum, checksum);
  EXPECT_TRUE(o->catalog_id.empty());
}

TEST_F(RestoreRequestTest, OptionsOnlyFirstAndNothingAfterTheChecksum) {
  auto [archive, checksum] = Archive("x");
  {
    auto r = Request();
    ASSERT_TRUE(r->Chunk(archive).ok());
    EXPECT_EQ(r->Options("", "").code(), absl::StatusCode::kInvalidArgument);
  }
  auto r = Request();
  ASSERT_TRUE(r->ExpectedChecksum(checksum).ok());
  absl::Status s = r->Chunk(archive);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("must be the last message"), std::string::npos) << s;
}

// One code for an expected checksum that does not hold, wherever it came.
TEST_F(RestoreRequestTest, ChecksumMismatchesAreDataLossAndApplyNothing) {
  auto [archive, checksum] = Archive("new");
  auto [other, other_checksum] = Archive("other");
  {
    auto r = Request();
    ASSERT_TRUE(r->Options(checksum, "").ok());
    ASSERT_TRUE(r->Chunk(archive).ok());
    EXPECT_EQ(r->ExpectedChecksum(other_checksum).code(), absl::StatusCode::kDataLoss);
  }
  {
    auto r = Request();
    ASSERT_TRUE(r->Options(other_checksum, "").ok());
    ASSERT_TRUE(r->Chunk(archive).ok());
    EXPECT_EQ(r->Finish(Later()).status().code(), absl::StatusCode::kDataLoss);
  }
  {
    auto r = Request();
    ASSERT_TRUE(r->Chunk(archive).ok());
    ASSERT_TRUE(r->ExpectedChecksum(other_checksum).ok());
    EXPECT_EQ(r->Finish(Later()).status().code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_EQ(node_.state, "old");
  EXPECT_TRUE(node_.events.empty());
}

TEST_F(RestoreRequestTest, AFailedSafetySnapshotAppliesNothing) {
  auto [archive, checksum] = Archive("new");
  auto r = Request([](absl::Time) -> absl::StatusOr<std::string> {
    return absl::ResourceExhaustedError("disk full");
  });
  ASSERT_TRUE(r->Chunk(archive).ok());
  auto o = r->Finish(Later());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(o.status().message().find("nothing was restored"), std::string::npos);
  EXPECT_NE(o.status().message().find("Free space in the catalog"), std::string::npos);
  EXPECT_EQ(node_.state, "old");
  EXPECT_EQ(node_.Events(), std::vector<std::string>{"restore"});  // never committed
  // Another cause is not answered with "free space" (a catalog directory
  // removed under the running agent).
  r.reset();  // the agent's one restore slot
  auto r2 = Request([](absl::Time) -> absl::StatusOr<std::string> {
    return absl::NotFoundError("cannot create /data/snapshots/.x.part: No such file or directory");
  });
  ASSERT_TRUE(r2->Chunk(archive).ok());
  auto o2 = r2->Finish(Later());
  EXPECT_EQ(o2.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(o2.status().message().find("Free space"), std::string::npos) << o2.status();
  EXPECT_EQ(node_.state, "old");
}

// SIGTERM while the safety snapshot is written: the agent is stopping, a
// retryable UNAVAILABLE, and nothing applied (issue 20, 8).
TEST_F(RestoreRequestTest, AStoppingAgentIsRetryableAndAppliesNothing) {
  auto [archive, checksum] = Archive("new");
  auto r = Request([](absl::Time) -> absl::StatusOr<std::string> {
    return absl::CancelledError("the snapshot was cancelled (the agent is stopping)");
  });
  ASSERT_TRUE(r->Chunk(archive).ok());
  auto o = r->Finish(Later());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kUnavailable) << o.status();
  EXPECT_NE(o.status().message().find("the agent is stopping; nothing was restored"),
            std::string::npos)
      << o.status();
  EXPECT_EQ(o.status().message().find("safety snapshot"), std::string::npos) << o.status();
  EXPECT_EQ(node_.state, "old");
}

TEST_F(RestoreRequestTest, ACatalogSnapshotIsPinnedAndTakesNoChunks) {
  auto catalog = Catalog::Open(dir_.path() + "/catalog");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  StringNode source;
  source.state = "stored state";
  auto stored = (*catalog)->Create(&source, TakeOptions(), SnapshotOrigin::kOnDemand, Later());
  ASSERT_TRUE(stored.ok()) << stored.status();

  EXPECT_EQ(Request()->Options("", stored->id).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Request(nullptr, catalog->get())->Options("", "missing").code(),
            absl::StatusCode::kNotFound);
  auto r = Request(nullptr, catalog->get());
  ASSERT_TRUE(r->Options(stored->checksum, stored->id).ok());
  EXPECT_EQ(r->Chunk("x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*catalog)->Delete(stored->id).code(), absl::StatusCode::kFailedPrecondition);
  auto o = r->Finish(Later());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->catalog_id, stored->id);
  EXPECT_EQ(node_.state, "stored state");
  r.reset();  // the pin goes with the request
  EXPECT_TRUE((*catalog)->Delete(stored->id).ok());
}

}  // namespace
}  // namespace snapshot
