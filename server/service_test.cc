// Unit tests of the gRPC glue with mock streams and an in-memory RaftNode;
// tests/grpc_api_test.cc covers the same paths over real sockets.
#include "server/service.h"
#include "server/methods.h"
#include "server/rpc.h"

#include <gmock/gmock.h>
#include <grpcpp/test/mock_stream.h>
#include <gtest/gtest.h>

#include <set>

#include <sys/stat.h>

#include <fstream>

#include "archive/archive.h"
#include "base/log.h"
#include "server/auth.h"

namespace snapshot {
namespace {

using ::testing::_;
using ::testing::Invoke;
using ::testing::Return;

// A node whose snapshot is a fixed byte string.
class FixedNode : public RaftNode {
 public:
  explicit FixedNode(std::string state) : state_(std::move(state)) {}
  const char* engine() const override { return "fixed"; }
  absl::StatusOr<NodeStatus> Status(absl::Time) override { return NodeStatus{}; }
  absl::Status CheckLeader(absl::Time) override { return absl::OkStatus(); }
  absl::StatusOr<CapturedSnapshot> Snapshot(const SnapshotOptions&,
                                            absl::Time) override {
    if (!leader_) {
      return absl::FailedPreconditionError("not the leader; the leader is node 2");
    }
    CapturedSnapshot c;
    c.meta.id = "1-7-0";
    c.meta.index = 7;
    c.meta.term = 1;
    c.meta.size = state_.size();
    c.state = std::make_unique<StringSource>(state_);
    return c;
  }
  absl::StatusOr<RestoreResult> Restore(const SnapshotMeta&, const StateOpener&, absl::Time,
                                        const BeforeCommit&) override {
    return absl::UnimplementedError("not used");
  }
  bool leader_ = true;

 private:
  std::string state_;
};

// A service over `node` with default options and a quiet log.
struct Svc {
  explicit Svc(RaftNode* node) : restorer(node, "/nonexistent", Limits()),
                                 svc(node, &restorer, ServiceOptions()) {
    SetLogOptions(LogLevel::kWarning, LogFormat::kText);
  }
  Restorer restorer;
  SnapshotServiceImpl svc;
};

TEST(SnapshotService, TakeSendsMetadataChunksTrailerInOrder) {
  FixedNode node(std::string(100000, 's'));
  Svc s_(&node);
  SnapshotServiceImpl& svc = s_.svc;
  grpc::testing::MockServerWriter<v1::TakeSnapshotResponse> writer;
  std::vector<v1::TakeSnapshotResponse> sent;
  EXPECT_CALL(writer, Write(_, _))
      .WillRepeatedly(Invoke([&](const v1::TakeSnapshotResponse& r, grpc::WriteOptions) {
        sent.push_back(r);
        return true;
      }));
  grpc::ServerContext ctx;
  v1::TakeSnapshotRequest req;
  req.set_chunk_size(16384);
  req.set_compression_level(0);  // stored: about 100 KB of archive
  uint64_t bytes = 0;
  absl::Status s = svc.Take(&ctx, req, &writer, &bytes);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_GE(sent.size(), 8u);
  EXPECT_TRUE(sent.front().has_metadata());
  EXPECT_EQ(sent.front().metadata().index(), 7u);
  EXPECT_TRUE(sent.back().has_trailer());
  std::string archive;
  for (size_t i = 1; i + 1 < sent.size(); ++i) {
    ASSERT_EQ(sent[i].message_case(), v1::TakeSnapshotResponse::kChunk);
    if (i + 2 < sent.size()) {
      EXPECT_EQ(sent[i].chunk().size(), 16384u);
    }
    archive += sent[i].chunk();
  }
  EXPECT_EQ(bytes, archive.size());
  EXPECT_EQ(sent.back().trailer().archive_size(), archive.size());
  EXPECT_EQ(sent.back().trailer().checksum(), ChecksumString(Sha256Of(archive)));
  StringSource src(archive);
  auto info = ReadArchive(&src, nullptr);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->meta.size, 100000u);
}

TEST(SnapshotService, TakeStopsAtTheFirstFailedWrite) {
  FixedNode node(std::string(200000, 'x'));
  Svc s_(&node);
  SnapshotServiceImpl& svc = s_.svc;
  grpc::testing::MockServerWriter<v1::TakeSnapshotResponse> writer;
  int writes = 0;
  EXPECT_CALL(writer, Write(_, _))
      .WillRepeatedly(Invoke([&](const v1::TakeSnapshotResponse&, grpc::WriteOptions) {
        return ++writes < 3;  // the client goes away on the third message
      }));
  grpc::ServerContext ctx;
  v1::TakeSnapshotRequest req;
  req.set_chunk_size(16384);
  req.set_compression_level(0);
  uint64_t bytes = 0;
  absl::Status s = svc.Take(&ctx, req, &writer, &bytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(writes, 3) << "kept writing after a failed Write";
}

TEST(SnapshotService, TakeOnFollowerSendsNothing) {
  FixedNode node("x");
  node.leader_ = false;
  Svc s_(&node);
  SnapshotServiceImpl& svc = s_.svc;
  grpc::testing::MockServerWriter<v1::TakeSnapshotResponse> writer;
  EXPECT_CALL(writer, Write(_, _)).Times(0);
  grpc::ServerContext ctx;
  uint64_t bytes = 0;
  absl::Status s = svc.Take(&ctx, v1::TakeSnapshotRequest(), &writer, &bytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("node 2"), std::string::npos);
}

TEST(StatusMapping, CodesCarryOver) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  grpc::Status s = ToGrpcStatus(absl::DataLossError("hash mismatch for state.bin"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(s.error_message(), "hash mismatch for state.bin");
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(Auth, ParsesRolesAndRefusesMalformedFiles) {
  EXPECT_TRUE(TokenAuth::Parse("# c\n\nread 0123456789abcdef\nadmin fedcba9876543210\n").ok());
  EXPECT_FALSE(TokenAuth::Parse("").ok());
  EXPECT_FALSE(TokenAuth::Parse("write 0123456789abcdef\n").ok());
  EXPECT_FALSE(TokenAuth::Parse("read short\n").ok());
  EXPECT_FALSE(TokenAuth::Parse("read a b c\n").ok());
  auto bad = TokenAuth::Parse("read 0123456789abcdef\nadmin\n");
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos);
}

TEST(SnapshotService, TakeRefusesBadCompressionRequestsBeforeCapturing) {
  struct Case {
    std::optional<int> level;
    bool fast;
    const char* says;
  };
  // -1 is no level: fast mode is asked for with `fast`, never by a level.
  for (const Case& c : {Case{11, false, "0 to 9"}, Case{-1, false, "0 to 9"}, Case{1, true, "fast"}}) {
    FixedNode node("x");
    Svc s_(&node);
    grpc::testing::MockServerWriter<v1::TakeSnapshotResponse> writer;
    EXPECT_CALL(writer, Write(_, _)).Times(0);
    grpc::ServerContext ctx;
    v1::TakeSnapshotRequest req;
    if (c.level) req.set_compression_level(*c.level);
    req.set_fast(c.fast);
    uint64_t bytes = 0;
    absl::Status s = s_.svc.Take(&ctx, req, &writer, &bytes);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s;
  }
}

// The method table and the services' descriptors hold the same methods, in
// both directions: a new RPC cannot be served without a role, and an entry
// cannot name a method that does not exist (a misspelt or copied name).
TEST(Methods, TheTableIsExactlyTheServicesMethods) {
  // Link the generated descriptors in, then walk every service.
  (void)v1::TakeSnapshotRequest::descriptor();
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  std::set<std::string> from_protos;
  for (const char* name : TableServices()) {
    const auto* service = pool->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string full = absl::StrCat("/", name, "/", service->method(i)->name());
      from_protos.insert(full);
      const MethodInfo* m = FindMethod(full);
      ASSERT_NE(m, nullptr) << full << " has no entry in server/methods.cc";
      EXPECT_EQ(m->name, service->method(i)->name());
      // Uploads bring bytes in; what streams to the client sends them out.
      if (service->method(i)->client_streaming()) {
        EXPECT_EQ(m->bytes, Direction::kIn) << full;
      }
      if (service->method(i)->server_streaming()) {
        EXPECT_EQ(m->bytes, Direction::kOut) << full;
      }
    }
  }
  std::set<std::string> from_table;
  for (const MethodInfo& m : AllMethods()) from_table.insert(m.full_name);
  EXPECT_EQ(from_table, from_protos);
  EXPECT_EQ(FindMethod("/snapshot.v1.SnapshotService/RestoreSnapshot")->role, Permission::kAdmin);
  EXPECT_EQ(FindMethod("/snapshot.v1.SnapshotService/TakeSnapshot")->role, Permission::kRead);
  EXPECT_EQ(FindMethod("/snapshot.v1.KeyValueService/Put")->bytes, Direction::kIn);
  EXPECT_EQ(FindMethod("/snapshot.v1.SnapshotService/Nope"), nullptr);
}

// A call the frame did not record (or whose method has no entry) is refused,
// with or without tokens.
TEST(Methods, AnUnrecordedCallIsRefused) {
  grpc::ServerContext ctx;
  Rpc rpc(&ctx, nullptr);
  EXPECT_EQ(rpc.authorized().code(), absl::StatusCode::kUnimplemented);
}

std::string WriteTokenFile(const std::string& name, const std::string& text,
                           mode_t mode) {
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
  return path;
}

TEST(Auth, TokenFileReadableByOthersIsRefused) {
  std::string path = WriteTokenFile("open", "admin 0123456789abcdef\n", 0644);
  auto auth = TokenAuth::LoadFile(path);
  ASSERT_FALSE(auth.ok());
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(auth.status().message().find("chmod 600"), std::string::npos)
      << auth.status();
  chmod(path.c_str(), 0600);
  EXPECT_TRUE(TokenAuth::LoadFile(path).ok());
}

TEST(Auth, ReloadSaysWhatChangedAndKeepsOldTokensOnError) {
  std::string path = WriteTokenFile(
      "reload", "admin 0123456789abcdef\nread aaaaaaaaaaaaaaaa\n", 0600);
  auto auth = Authorizer::FromFile(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  WriteTokenFile("reload", "admin 0123456789abcdef\nread bbbbbbbbbbbbbbbb\nread cccccccccccccccc\n", 0600);
  auto r = (*auth)->Reload();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "1 admin and 2 read tokens (were 1 and 1): 2 added, 1 removed");
  WriteTokenFile("reload", "garbage\n", 0600);
  EXPECT_FALSE((*auth)->Reload().ok());
  grpc::ServerContext ctx;
  EXPECT_EQ((*auth)->Authorize(ctx, Permission::kRead, "GetStatus").status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace snapshot
