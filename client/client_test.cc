// SnapshotClient against mocked stubs: what Save leaves on disk when the
// stream is complete, short, corrupt or broken.
#include "client/client.h"

#include <gmock/gmock.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "archive/archive.h"
#include "base/sha256.h"
#include "proto/snapshot/v1/snapshot_mock.grpc.pb.h"
#include "base/testing.h"

namespace snapshot {
namespace {

using ::testing::_;
using ::testing::Invoke;
using ::testing::Return;

// Scripts the messages of a TakeSnapshot stream and its final status.
grpc::testing::MockClientReader<v1::TakeSnapshotResponse>* Script(
    std::vector<v1::TakeSnapshotResponse> msgs, grpc::Status end) {
  auto* r = new grpc::testing::MockClientReader<v1::TakeSnapshotResponse>();
  auto queue = std::make_shared<std::vector<v1::TakeSnapshotResponse>>(std::move(msgs));
  auto pos = std::make_shared<size_t>(0);
  EXPECT_CALL(*r, Read(_)).WillRepeatedly(Invoke([queue, pos](v1::TakeSnapshotResponse* m) {
    if (*pos >= queue->size()) return false;
    *m = (*queue)[(*pos)++];
    return true;
  }));
  EXPECT_CALL(*r, Finish()).WillOnce(Return(end));
  return r;
}

std::vector<v1::TakeSnapshotResponse> Stream(const std::string& archive,
                                             bool with_trailer,
                                             std::string checksum = "") {
  std::vector<v1::TakeSnapshotResponse> msgs(1);
  msgs[0].mutable_metadata()->set_index(5);
  for (size_t off = 0; off < archive.size(); off += 7) {
    v1::TakeSnapshotResponse c;
    c.set_chunk(archive.substr(off, 7));
    msgs.push_back(c);
  }
  if (with_trailer) {
    v1::TakeSnapshotResponse t;
    t.mutable_trailer()->set_archive_size(archive.size());
    t.mutable_trailer()->set_checksum(
        checksum.empty() ? ChecksumString(Sha256Of(archive)) : checksum);
    msgs.push_back(t);
  }
  return msgs;
}

struct Fixture {
  testing::TempDir dir;
  v1::MockSnapshotServiceStub* stub = new v1::MockSnapshotServiceStub();
  SnapshotClient client{std::unique_ptr<v1::SnapshotService::StubInterface>(stub),
                        std::make_unique<v1::MockKeyValueServiceStub>(),
                        ClientOptions()};
  std::string path = dir.path() + "/backup.snap";
  bool Exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }
};

TEST(ClientSave, CompleteStreamLandsAtomically) {
  Fixture f;
  // A real archive, so that the progress (state bytes, by decompressing the
  // stream) can be checked.
  SnapshotMeta meta;
  meta.id = "1-5-0";
  meta.index = 5;
  meta.term = 1;
  const std::string state(300000, 's');
  meta.size = state.size();
  std::string archive;
  StringSource src(state);
  StringSink sink(&archive);
  ASSERT_TRUE(WriteArchive(meta, &src, &sink).ok());
  auto msgs = Stream(archive, true);
  msgs[0].mutable_metadata()->set_state_size(state.size());
  EXPECT_CALL(*f.stub, TakeSnapshotRaw(_, _))
      .WillOnce(Return(Script(msgs, grpc::Status::OK)));
  uint64_t last = 0, total = 0;
  auto r = f.client.Save(f.path, {}, [&](uint64_t done, uint64_t t) {
    EXPECT_GE(done, last);
    last = done;
    total = t;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.index(), 5u);
  EXPECT_EQ(total, state.size());
  EXPECT_EQ(last, state.size());
  std::ifstream in(f.path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), archive);
  EXPECT_FALSE(f.Exists(f.path + ".part"));
  // A second save to the same name is refused and leaves the file alone.
  auto again = f.client.Save(f.path, {}, nullptr);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(ClientSave, MissingTrailerLeavesNoFile) {
  Fixture f;
  EXPECT_CALL(*f.stub, TakeSnapshotRaw(_, _))
      .WillOnce(Return(Script(Stream("abcdefghijklmnop", false), grpc::Status::OK)));
  auto r = f.client.Save(f.path, {}, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_FALSE(f.Exists(f.path));
  EXPECT_FALSE(f.Exists(f.path + ".part"));
}

TEST(ClientSave, ChecksumMismatchLeavesNoFile) {
  Fixture f;
  EXPECT_CALL(*f.stub, TakeSnapshotRaw(_, _))
      .WillOnce(Return(Script(Stream("abcdefghijklmnop", true, "sha-256=AAAA"),
                              grpc::Status::OK)));
  auto r = f.client.Save(f.path, {}, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find("do not match"), std::string::npos);
  EXPECT_FALSE(f.Exists(f.path));
  EXPECT_FALSE(f.Exists(f.path + ".part"));
}

TEST(ClientSave, AgentErrorIsPassedOnAndLeavesNoFile) {
  Fixture f;
  EXPECT_CALL(*f.stub, TakeSnapshotRaw(_, _))
      .WillOnce(Return(Script(Stream("abcdefghijklmnop", false),
                              grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                           "node 2 is not the leader"))));
  auto r = f.client.Save(f.path, {}, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "node 2 is not the leader");
  EXPECT_FALSE(f.Exists(f.path));
  EXPECT_FALSE(f.Exists(f.path + ".part"));
}

TEST(ClientErrors, UnreachableNamesTheAddress) {
  absl::Status s = FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused"),
                            "10.1.2.3:7150");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("10.1.2.3:7150"), std::string::npos);
}

}  // namespace
}  // namespace snapshot
