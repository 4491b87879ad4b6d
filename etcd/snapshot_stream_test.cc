#include "etcd/snapshot_stream.h"

#include <gtest/gtest.h>

#include "base/sha256.h"

namespace snapshot {
namespace {

std::string Sha(absl::string_view db) {
  Digest d = Sha256Of(db);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

TEST(EtcdSnapshotStream, AWholeStreamAndEveryWayToBreakIt) {
  const std::string db = "0123456789abcdef";
  {
    EtcdSnapshotStream s(10, 6);
    EXPECT_EQ(s.state_size(), 16u + 32u);
    EXPECT_TRUE(s.Accept(db.substr(0, 10), 6).ok());
    EXPECT_EQ(s.End().code(), absl::StatusCode::kDataLoss);
    EXPECT_TRUE(s.Accept(db.substr(10), 0).ok());
    EXPECT_NE(s.End().message().find("before its SHA-256"), std::string::npos);
    EXPECT_TRUE(s.Accept(Sha(db), 0).ok());
    EXPECT_TRUE(s.End().ok());
    EXPECT_EQ(s.Accept("x", 0).code(), absl::StatusCode::kDataLoss) << "after the hash";
  }
  {
    EtcdSnapshotStream s(10, 6);
    EXPECT_TRUE(s.Accept(db.substr(0, 10), 6).ok());
    EXPECT_EQ(s.Accept(db.substr(10), 1).code(), absl::StatusCode::kDataLoss) << "remaining lies";
  }
  {
    EtcdSnapshotStream s(10, 6);
    EXPECT_TRUE(s.Accept(db.substr(0, 10), 6).ok());
    EXPECT_EQ(s.Accept(db.substr(10) + "more", 0).code(), absl::StatusCode::kDataLoss)
        << "more than announced";
  }
  {
    EtcdSnapshotStream s(16, 0);
    EXPECT_TRUE(s.Accept(db, 0).ok());
    std::string wrong = Sha(db);
    wrong[0] ^= 1;
    EXPECT_NE(s.Accept(wrong, 0).message().find("hash mismatch"), std::string::npos);
  }
  {
    EtcdSnapshotStream s(16, 0);
    EXPECT_TRUE(s.Accept(db, 0).ok());
    EXPECT_EQ(s.Accept("short", 0).code(), absl::StatusCode::kDataLoss);
  }
}

}  // namespace
}  // namespace snapshot
