// The remote layout against a real S3 server (Ceph RGW on loopback).
#include "store/remote_store.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "store/testing/fault_proxy.h"
#include "store/testing/rgw_server.h"

namespace snapshot {
namespace {



// Writes `data` into `sink` a MiB at a time, as an archive arrives.
absl::Status WriteInMiBs(const std::string& data, ByteSink* sink) {
  for (size_t at = 0; at < data.size(); at += 1 << 20) {
    absl::Status s = sink->Write(absl::string_view(data).substr(at, 1 << 20));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

TEST(PartSize, FitsTheLargestArchiveInTenThousandParts) {
  EXPECT_EQ(PartSizeFor(1 << 20), 8u << 20);
  const uint64_t big = 200ull << 30;
  EXPECT_GE(PartSizeFor(big) * kMaxParts, big);
  EXPECT_EQ(PartSizeFor(big) % (1 << 20), 0u);
}

// Parts that fail (500, 503 SlowDown, a dropped connection) on the way to a
// real server are sent again; the object is still exact.
TEST(RemoteStore, FailedPartsAreRetriedAndTheObjectIsExact) {
  int faults = 0, parts = 0;
  testing::FaultProxy proxy(testing::PortOf(testing::SharedRgw()->endpoint()),
                            [&](const testing::FaultProxy::Request& r) -> std::string {
                              if (!absl::StartsWith(r.head, "PUT ") ||
                                  r.head.find("partNumber=") == std::string::npos) {
                                return "";
                              }
                              const int n = parts++;
                              if (n % 3 != 1) return "";
                              faults++;
                              const char* kinds[] = {"503", "500", "drop"};
                              return kinds[(n / 3) % 3];
                            });
  s3::ClientOptions o = testing::SharedRgw()->Options();
  o.endpoint = proxy.endpoint();
  RemoteStore store(std::make_shared<s3::Client>(o, testing::SharedRgw()->Credentials()),
                    "faults", 5 << 20, 3);
  const std::string archive = testing::RandomBytes((37 << 20) + 5, 11);  // 8 parts
  auto up = store.Upload(
      "alpha", "20261206T120000.000Z-i5-scheduled", false,
      [&](ByteSink* sink) { return WriteInMiBs(archive, sink); },
      [](const RemoteUpload&) { return std::string("{}"); });
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_GE(faults, 3) << "every kind of fault was injected";
  std::string back;
  StringSink sink(&back);
  auto direct = testing::SharedRgw()->NewClient();
  ASSERT_TRUE(direct->GetObject("faults/alpha/20261206T120000.000Z-i5-scheduled.snap", 0, &sink,
                                1 << 30)
                  .ok());
  EXPECT_EQ(back.size(), archive.size());
  EXPECT_TRUE(back == archive) << "the object differs from what was sent";
  EXPECT_EQ(up->object_sha256, HexLower(Sha256Of(archive)));
}

TEST(RemoteStore, UploadListFetchDelete) {
  RemoteStore store(testing::SharedRgw()->NewClient(), "backups/prod", 5 << 20, 3);
  const std::string archive = testing::RandomBytes((23 << 20) + 123, 7);  // 5 parts
  std::string started_key, started_id;
  auto up = store.Upload(
      "alpha", "20261206T120000.000Z-i5-scheduled", false,
      [&](ByteSink* sink) { return WriteInMiBs(archive, sink); },
      [](const RemoteUpload& u) { return absl::StrCat("{\"size\":", u.object_size, "}"); },
      [&](const std::string& key, const std::string& id) {
        started_key = key;
        started_id = id;
      });
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->object_size, archive.size());
  EXPECT_EQ(up->object_sha256, HexLower(Sha256Of(archive)));
  EXPECT_EQ(started_key, "backups/prod/alpha/20261206T120000.000Z-i5-scheduled.snap");
  EXPECT_FALSE(started_id.empty());

  // A snapshot of another cluster, an archive without its sidecar (an
  // upload that did not finish) and a stray object.
  auto other = store.Upload(
      "beta", "20261206T130000.000Z-i9-on-demand", true,
      [](ByteSink* sink) { return sink->Write("age bytes"); },
      [](const RemoteUpload&) { return std::string("{}"); });
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(store.client()->PutObject("backups/prod/alpha/half.snap", "x").ok());
  ASSERT_TRUE(store.client()->PutObject("backups/prod/README", "x").ok());
  ASSERT_TRUE(store.client()->PutObject("backups/production/alpha/x.snap", "x").ok());

  auto list = store.List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].cluster, "alpha");
  EXPECT_EQ((*list)[0].archive_size, archive.size());
  EXPECT_FALSE((*list)[0].encrypted);
  EXPECT_EQ((*list)[1].cluster, "beta");
  EXPECT_TRUE((*list)[1].encrypted);
  EXPECT_EQ((*list)[1].archive_key, "backups/prod/beta/20261206T130000.000Z-i9-on-demand.snap.age");
  auto sidecar = store.ReadSidecar((*list)[0]);
  ASSERT_TRUE(sidecar.ok());
  EXPECT_EQ(*sidecar, absl::StrCat("{\"size\":", archive.size(), "}"));
  std::string tail;
  StringSink sink(&tail);
  ASSERT_TRUE(store.Fetch((*list)[0], 20 << 20, &sink, 1ull << 32).ok());
  EXPECT_TRUE(tail == archive.substr(20 << 20));

  ASSERT_TRUE(store.Delete((*list)[1]).ok());
  list = store.List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
}

TEST(RemoteStore, FailedUploadIsAbortedAndLeftUploadsAreSwept) {
  RemoteStore store(testing::SharedRgw()->NewClient(), "sweep", 5 << 20, 2);
  auto up = store.Upload(
      "c", "x", false,
      [](ByteSink* sink) -> absl::Status {
        absl::Status s = sink->Write(testing::RandomBytes(12 << 20, 1));
        if (!s.ok()) return s;
        return absl::DataLossError("the local archive went bad");
      },
      [](const RemoteUpload&) { return std::string("{}"); });
  EXPECT_EQ(up.status().code(), absl::StatusCode::kDataLoss);
  auto uploads = store.client()->ListMultipartUploads("sweep/");
  ASSERT_TRUE(uploads.ok());
  EXPECT_TRUE(uploads->empty()) << "a failed upload is aborted";
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());

  // An upload a killed agent left behind.
  auto id = store.client()->CreateMultipartUpload("sweep/c/y.snap");
  ASSERT_TRUE(id.ok());
  auto n = store.AbortLeftUploads("c", absl::Now() - absl::Hours(1));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0) << "too recent: it may still be running";
  n = store.AbortLeftUploads("c", absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1);
  uploads = store.client()->ListMultipartUploads("sweep/");
  ASSERT_TRUE(uploads.ok());
  EXPECT_TRUE(uploads->empty());
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new snapshot::testing::RgwEnvironment());
  return RUN_ALL_TESTS();
}
