// The gRPC API end to end: real agents (embedded Raft node + gRPC server) on
// 127.0.0.1 with ephemeral ports, real channels.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "archive/gzip.h"
#include "archive/tar.h"
#include "base/io.h"
#include "base/sha256.h"
#include "raft/kv_state.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/agent_testing.h"

namespace snapshot {
namespace {

using Serving = grpc::health::v1::HealthCheckResponse;

// Waits until the agent's overall health is `want`, through Health.Watch
// (the server pushes every change: no polling); false at the deadline.

using testing::Connect;
using testing::ReadFile;
using testing::SingleAgentConfig;
using testing::SpoolFiles;
using testing::TempDir;

struct Running {
  std::unique_ptr<Agent> agent;
  std::unique_ptr<v1::SnapshotService::Stub> snaps;
  std::unique_ptr<v1::KeyValueService::Stub> kv;
};

Running StartAgent(AgentConfig c,
                   std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  Running r;
  auto a = Agent::Start(c);
  EXPECT_TRUE(a.ok()) << a.status();
  if (!a.ok()) return r;
  r.agent = std::move(*a);
  EXPECT_TRUE(r.agent->embedded()->WaitForLeader(absl::Now() + absl::Seconds(10)).ok());
  auto ch = Connect(r.agent->address(), creds);
  r.snaps = v1::SnapshotService::NewStub(ch);
  r.kv = v1::KeyValueService::NewStub(ch);
  return r;
}

grpc::Status Put(v1::KeyValueService::Stub* kv, const std::string& k,
                 const std::string& v, const std::string& token = "") {
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::PutRequest req;
  req.set_key(k);
  req.set_value(v);
  v1::PutResponse resp;
  return kv->Put(&ctx, req, &resp);
}

std::string Get(v1::KeyValueService::Stub* kv, const std::string& k) {
  grpc::ClientContext ctx;
  v1::GetRequest req;
  req.set_key(k);
  v1::GetResponse resp;
  grpc::Status s = kv->Get(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.found() ? resp.value() : "<missing>";
}

absl::Time In(absl::Duration d) { return absl::Now() + d; }

TEST(GrpcApi, TakeVerifyRestoreRoundTrip) {
  TempDir dir;
  Running r = StartAgent(SingleAgentConfig(dir.path()));
  ASSERT_NE(r.agent, nullptr);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(Put(r.kv.get(), absl::StrCat("user/", i), "original").ok());
  }
  v1::TakeSnapshotRequest req;
  req.set_chunk_size(16384);
  testing::Taken t = testing::Take(r.snaps.get(), req);
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  // Metadata first, chunks, trailer last.
  ASSERT_GE(t.order.size(), 3u);
  EXPECT_EQ(t.order.front(), v1::TakeSnapshotResponse::kMetadata);
  EXPECT_EQ(t.order.back(), v1::TakeSnapshotResponse::kTrailer);
  for (size_t i = 1; i + 1 < t.order.size(); ++i) {
    EXPECT_EQ(t.order[i], v1::TakeSnapshotResponse::kChunk);
  }
  EXPECT_GE(t.metadata.index(), 100u);
  EXPECT_FALSE(t.metadata.stale());
  EXPECT_EQ(t.trailer.archive_size(), t.archive.size());
  EXPECT_EQ(t.trailer.checksum(), ChecksumString(Sha256Of(t.archive)));

  v1::VerifySnapshotResponse vr;
  grpc::Status vs = testing::Verify(r.snaps.get(), t.archive, &vr, 1000);
  ASSERT_TRUE(vs.ok()) << vs.error_message();
  EXPECT_EQ(vr.metadata().index(), t.metadata.index());
  EXPECT_EQ(vr.metadata().state_size(), t.metadata.state_size());
  EXPECT_EQ(vr.checksum(), t.trailer.checksum());

  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(Put(r.kv.get(), absl::StrCat("user/", i), "changed").ok());
  }
  ASSERT_TRUE(Put(r.kv.get(), "new/key", "x").ok());
  v1::RestoreSnapshotResponse rr;
  grpc::Status rs =
      testing::Restore(r.snaps.get(), t.archive, &rr, t.trailer.checksum());
  ASSERT_TRUE(rs.ok()) << rs.error_message();
  EXPECT_GT(rr.restored_index(), t.metadata.index());
  EXPECT_EQ(rr.metadata().index(), t.metadata.index());
  EXPECT_EQ(Get(r.kv.get(), "user/42"), "original");
  EXPECT_EQ(Get(r.kv.get(), "new/key"), "<missing>");
  EXPECT_TRUE(SpoolFiles(dir.path() + "/data").empty());
}

TEST(GrpcApi, EveryInteropArchiveVerifiesAsExpected) {
  TempDir dir;
  Running r = StartAgent(SingleAgentConfig(dir.path()));
  ASSERT_NE(r.agent, nullptr);
  const std::string base = "external/shared/interop/";
  std::ifstream tsv(base + "expected.tsv");
  std::string line;
  std::getline(tsv, line);
  int rows = 0;
  while (std::getline(tsv, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    ASSERT_GE(f.size(), 5u);
    SCOPED_TRACE(f[0]);
    ++rows;
    v1::VerifySnapshotResponse resp;
    grpc::Status s = testing::Verify(r.snaps.get(), ReadFile(base + f[0]), &resp, 333);
    // We are stricter than Nomad on meta.json's Size.
    if (f[1] == "ok" && f[0] != "small-meta-size-mismatch.snap") {
      ASSERT_TRUE(s.ok()) << s.error_message();
      uint64_t index, term, size;
      ASSERT_TRUE(absl::SimpleAtoi(f[2], &index));
      ASSERT_TRUE(absl::SimpleAtoi(f[3], &term));
      ASSERT_TRUE(absl::SimpleAtoi(f[4], &size));
      EXPECT_EQ(resp.metadata().index(), index);
      EXPECT_EQ(resp.metadata().term(), term);
      EXPECT_EQ(resp.metadata().state_size(), size);
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
      EXPECT_FALSE(s.error_message().empty());
    }
  }
  EXPECT_GE(rows, 20);
}

TEST(GrpcApi, CorruptOrForeignRestoreChangesNothing) {
  TempDir dir;
  Running r = StartAgent(SingleAgentConfig(dir.path()));
  ASSERT_NE(r.agent, nullptr);
  ASSERT_TRUE(Put(r.kv.get(), "keep", "me").ok());
  testing::Taken t = testing::Take(r.snaps.get());
  ASSERT_TRUE(t.status.ok());
  ASSERT_TRUE(Put(r.kv.get(), "keep", "newer").ok());
  auto before = r.agent->embedded()->StateDigest(In(absl::Seconds(5)));

  v1::RestoreSnapshotResponse resp;
  grpc::Status s = testing::Restore(r.snaps.get(), t.archive.substr(0, t.archive.size() - 5), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  std::string flipped = t.archive;
  flipped[flipped.size() / 2] ^= 0x10;
  s = testing::Restore(r.snaps.get(), flipped, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  s = testing::Restore(r.snaps.get(), t.archive, &resp, "sha-256=AAAA");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_NE(s.error_message().find("expected"), std::string::npos);
  s = testing::Restore(r.snaps.get(), ReadFile("external/shared/interop/small.snap"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();

  auto after = r.agent->embedded()->StateDigest(In(absl::Seconds(5)));
  EXPECT_EQ(before->second, after->second);
  EXPECT_EQ(Get(r.kv.get(), "keep"), "newer");
  EXPECT_TRUE(SpoolFiles(dir.path() + "/data").empty());
}

TEST(GrpcApi, ClientCancellationLeavesNoTraceAndNoChange) {
  TempDir dir;
  Running r = StartAgent(SingleAgentConfig(dir.path()));
  ASSERT_NE(r.agent, nullptr);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(Put(r.kv.get(), absl::StrCat("k/", i), std::string(1000, 'x')).ok());
  }
  testing::Taken full = testing::Take(r.snaps.get());
  ASSERT_TRUE(full.status.ok());
  ASSERT_TRUE(Put(r.kv.get(), "after", "snapshot").ok());
  auto before = r.agent->embedded()->StateDigest(In(absl::Seconds(5)));

  // Mid-Take: read the metadata and one chunk, then cancel.
  {
    grpc::ClientContext ctx;
    v1::TakeSnapshotRequest req;
    req.set_chunk_size(16384);
    auto reader = r.snaps->TakeSnapshot(&ctx, req);
    v1::TakeSnapshotResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    ASSERT_TRUE(resp.has_metadata());
    ASSERT_TRUE(reader->Read(&resp));
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Mid-Restore: send half the archive, then cancel.
  {
    grpc::ClientContext ctx;
    v1::RestoreSnapshotResponse resp;
    auto writer = r.snaps->RestoreSnapshot(&ctx, &resp);
    for (size_t off = 0; off < full.archive.size() / 2; off += 65536) {
      v1::RestoreSnapshotRequest req;
      req.set_chunk(full.archive.substr(off, 65536));
      ASSERT_TRUE(writer->Write(req));
    }
    // Cancel once the agent is spooling state bytes.
    const std::string data = dir.path() + "/data";
    testing::WaitForChange(
        data,
        [&] {
          auto files = SpoolFiles(data);
          return files.size() == 1 && std::filesystem::file_size(data + "/" + files[0]) > 0;
        },
        absl::Seconds(5));
    ASSERT_EQ(SpoolFiles(data).size(), 1u);
    ctx.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The server notices asynchronously.
  testing::WaitForChange(
      dir.path() + "/data", [&] { return SpoolFiles(dir.path() + "/data").empty(); },
      absl::Seconds(5));
  EXPECT_TRUE(SpoolFiles(dir.path() + "/data").empty());
  auto after = r.agent->embedded()->StateDigest(In(absl::Seconds(5)));
  EXPECT_EQ(before->second, after->second);
  EXPECT_EQ(Get(r.kv.get(), "after"), "snapshot");
  // The agent still serves.
  testing::Taken again = testing::Take(r.snaps.get());
  EXPECT_TRUE(again.status.ok());
}

TEST(GrpcApi, FollowersNameTheLeader) {
  TempDir dir;
  int leader = -1;
  auto agents = testing::StartAgentCluster(dir.path(), 3, &leader);
  ASSERT_EQ(agents.size(), 3u);
  ASSERT_GE(leader, 0);
  int follower = (leader + 1) % 3;
  auto leader_kv = v1::KeyValueService::NewStub(Connect(agents[leader]->address()));
  ASSERT_TRUE(Put(leader_kv.get(), "a", "b").ok());
  auto stub = v1::SnapshotService::NewStub(Connect(agents[follower]->address()));
  const std::string leader_addr = agents[leader]->address();

  testing::Taken t = testing::Take(stub.get());
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(t.status.error_message().find(leader_addr), std::string::npos)
      << t.status.error_message();
  EXPECT_TRUE(t.order.empty()) << "no data before the refusal";

  auto leader_stub = v1::SnapshotService::NewStub(Connect(leader_addr));
  testing::Taken good = testing::Take(leader_stub.get());
  ASSERT_TRUE(good.status.ok());
  v1::RestoreSnapshotResponse rr;
  grpc::Status rs = testing::Restore(stub.get(), good.archive, &rr);
  EXPECT_EQ(rs.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(rs.error_message().find(leader_addr), std::string::npos)
      << rs.error_message();

  v1::TakeSnapshotRequest stale;
  stale.set_allow_stale(true);
  testing::Taken s = testing::Take(stub.get(), stale);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_TRUE(s.metadata.stale());

  grpc::ClientContext ctx;
  v1::GetStatusResponse st;
  ASSERT_TRUE(stub->GetStatus(&ctx, v1::GetStatusRequest(), &st).ok());
  EXPECT_EQ(st.role(), "follower");
  EXPECT_EQ(st.leader_agent_address(), leader_addr);
  EXPECT_EQ(st.members_size(), 3);

  // Health says SERVING only while a leader is known: stop the two others
  // and the remaining agent turns NOT_SERVING.
  auto health = Connect(agents[follower]->address());
  EXPECT_TRUE(testing::WaitForHealth(health, Serving::SERVING, absl::Seconds(5)));
  for (int i = 0; i < 3; ++i) {
    if (i != follower) agents[i].reset();
  }
  EXPECT_TRUE(testing::WaitForHealth(health, Serving::NOT_SERVING, absl::Seconds(15)));
}

TEST(GrpcApi, TokenRoles) {
  TempDir dir;
  const std::string tokens = dir.path() + "/tokens";
  std::ofstream(tokens) << "# test tokens\nread  reader-token-0123456789\n"
                           "admin admin-token-0123456789\n";
  std::filesystem::permissions(tokens, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write);
  AgentConfig c = SingleAgentConfig(dir.path());
  c.token_file = tokens;
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  const std::string reader = "reader-token-0123456789";
  const std::string admin = "admin-token-0123456789";

  testing::Taken none = testing::Take(r.snaps.get());
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  testing::Taken wrong = testing::Take(r.snaps.get(), {}, "not-a-token-0123456789");
  EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  EXPECT_EQ(Put(r.kv.get(), "k", "v", reader).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Put(r.kv.get(), "k", "v", admin).ok());
  testing::Taken t = testing::Take(r.snaps.get(), {}, reader);
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  v1::VerifySnapshotResponse vr;
  EXPECT_TRUE(testing::Verify(r.snaps.get(), t.archive, &vr, 65536, reader).ok());
  ASSERT_TRUE(Put(r.kv.get(), "k", "changed", admin).ok());
  v1::RestoreSnapshotResponse rr;
  grpc::Status denied = testing::Restore(r.snaps.get(), t.archive, &rr, "", reader);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(denied.error_message().find("admin"), std::string::npos);
  // Neither refusal changed anything.
  EXPECT_EQ(*r.agent->embedded()->Get("k", false, In(absl::Seconds(5))), "changed");
  EXPECT_TRUE(testing::Restore(r.snaps.get(), t.archive, &rr, "", admin).ok());
  EXPECT_EQ(*r.agent->embedded()->Get("k", false, In(absl::Seconds(5))), "v");

  // The catalog: read may list and fetch; admin alone creates and deletes.
  auto call = [&](const std::string& token, auto fn) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    return fn(&ctx);
  };
  v1::CatalogEntry entry;
  EXPECT_EQ(call(reader, [&](grpc::ClientContext* ctx) {
              return r.snaps->CreateSnapshot(ctx, v1::CreateSnapshotRequest(), &entry);
            }).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(call(admin, [&](grpc::ClientContext* ctx) {
                return r.snaps->CreateSnapshot(ctx, v1::CreateSnapshotRequest(), &entry);
              }).ok());
  v1::ListSnapshotsResponse list;
  EXPECT_TRUE(call(reader, [&](grpc::ClientContext* ctx) {
                return r.snaps->ListSnapshots(ctx, v1::ListSnapshotsRequest(), &list);
              }).ok());
  EXPECT_GE(list.snapshots_size(), 2);  // the safety snapshot of the restore, and this one
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + reader);
    v1::FetchSnapshotRequest req;
    req.set_id(entry.id());
    auto rd = r.snaps->FetchSnapshot(&ctx, req);
    v1::FetchSnapshotResponse msg;
    while (rd->Read(&msg)) {
    }
    EXPECT_TRUE(rd->Finish().ok());
  }
  v1::DeleteSnapshotRequest del;
  del.set_id(entry.id());
  v1::DeleteSnapshotResponse dr;
  EXPECT_EQ(call(reader, [&](grpc::ClientContext* ctx) {
              return r.snaps->DeleteSnapshot(ctx, del, &dr);
            }).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(call(admin, [&](grpc::ClientContext* ctx) {
                return r.snaps->DeleteSnapshot(ctx, del, &dr);
              }).ok());
}

// Read-role callers cannot take every stream slot (issue 20, 6): with
// --max-streams=4, three read-role verifies that hold on are all they get;
// a fourth is refused naming the reason, and an admin's Take and restore
// still get through.
TEST(GrpcApi, ReadRoleStreamsLeaveRoomForAdminWork) {
  TempDir dir;
  const std::string tokens = dir.path() + "/tokens";
  std::ofstream(tokens) << "read reader-token-0123456789\nadmin admin-token-0123456789\n";
  std::filesystem::permissions(tokens, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write);
  AgentConfig c = SingleAgentConfig(dir.path());
  c.token_file = tokens;
  c.service.max_concurrent_streams = 4;
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  const std::string reader = "reader-token-0123456789", admin = "admin-token-0123456789";
  testing::Taken t = testing::Take(r.snaps.get(), {}, admin);
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();

  struct Held {
    grpc::ClientContext ctx;
    v1::VerifySnapshotResponse resp;
    std::unique_ptr<grpc::ClientWriter<v1::VerifySnapshotRequest>> writer;
  };
  auto hold = [&](Held* h) {
    h->ctx.AddMetadata("authorization", "Bearer " + reader);
    h->writer = r.snaps->VerifySnapshot(&h->ctx, &h->resp);
    v1::VerifySnapshotRequest req;
    req.set_chunk(t.archive.substr(0, 100));  // a beginning, and then nothing
    return h->writer->Write(req);
  };
  std::vector<std::unique_ptr<Held>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Held>());
    ASSERT_TRUE(hold(held.back().get()));
  }
  // The server has them all once a call made after them is answered.
  ASSERT_TRUE(Put(r.kv.get(), "sync", "1", admin).ok());
  v1::VerifySnapshotResponse vr;
  grpc::Status fourth = testing::Verify(r.snaps.get(), t.archive, &vr, 65536, reader);
  EXPECT_EQ(fourth.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << fourth.error_message();
  EXPECT_NE(fourth.error_message().find("read-role callers"), std::string::npos)
      << fourth.error_message();
  v1::RestoreSnapshotResponse rr;
  grpc::Status restored = testing::Restore(r.snaps.get(), t.archive, &rr, "", admin);
  EXPECT_TRUE(restored.ok()) << restored.error_message();
  testing::Taken again = testing::Take(r.snaps.get(), {}, admin);
  EXPECT_TRUE(again.status.ok()) << again.status.error_message();
  for (auto& h : held) h->ctx.TryCancel();
}

TEST(GrpcApi, TlsAndMutualTls) {
  TempDir dir;
  testing::MakeCertificates(dir.path());
  const std::string d = dir.path() + "/";
  grpc::SslCredentialsOptions server_only;
  server_only.pem_root_certs = ReadFile(d + "ca.crt");
  grpc::SslCredentialsOptions with_client = server_only;
  with_client.pem_private_key = ReadFile(d + "client.key");
  with_client.pem_cert_chain = ReadFile(d + "client.crt");

  {  // TLS
    std::filesystem::create_directories(dir.path() + "/tls");
    AgentConfig c = SingleAgentConfig(dir.path() + "/tls");
    c.tls_cert = d + "server.crt";
    c.tls_key = d + "server.key";
    Running r = StartAgent(c, grpc::SslCredentials(server_only));
    ASSERT_NE(r.agent, nullptr);
    testing::Taken t = testing::Take(r.snaps.get());
    EXPECT_TRUE(t.status.ok()) << t.status.error_message();
    auto plain = v1::SnapshotService::NewStub(Connect(r.agent->address()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    v1::GetStatusResponse st;
    EXPECT_FALSE(plain->GetStatus(&ctx, v1::GetStatusRequest(), &st).ok());
  }
  {  // mutual TLS
    std::filesystem::create_directories(dir.path() + "/mtls");
    AgentConfig c = SingleAgentConfig(dir.path() + "/mtls");
    c.tls_cert = d + "server.crt";
    c.tls_key = d + "server.key";
    c.tls_client_ca = d + "ca.crt";
    Running r = StartAgent(c, grpc::SslCredentials(with_client));
    ASSERT_NE(r.agent, nullptr);
    testing::Taken t = testing::Take(r.snaps.get());
    EXPECT_TRUE(t.status.ok()) << t.status.error_message();
    auto no_cert = v1::SnapshotService::NewStub(
        Connect(r.agent->address(), grpc::SslCredentials(server_only)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    v1::GetStatusResponse st;
    EXPECT_FALSE(no_cert->GetStatus(&ctx, v1::GetStatusRequest(), &st).ok());
  }
}

TEST(GrpcApi, Limits) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  c.service.limits.max_archive_bytes = 4096;
  c.service.max_concurrent_streams = 1;
  c.service.idle_timeout = absl::Seconds(1);
  c.max_message_bytes = 64 << 10;
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  // Incompressible values, so that the archive is well over 4096 bytes.
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(Put(r.kv.get(), absl::StrCat("k", i),
                    HexLower(Sha256Of(absl::StrCat(i))))
                    .ok());
  }
  v1::TakeSnapshotRequest bad;
  bad.set_chunk_size(100);
  EXPECT_EQ(testing::Take(r.snaps.get(), bad).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_chunk_size(0);
  bad.set_compression_level(11);
  EXPECT_EQ(testing::Take(r.snaps.get(), bad).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  testing::Taken t = testing::Take(r.snaps.get());
  ASSERT_TRUE(t.status.ok());
  ASSERT_GT(t.archive.size(), 4096u);
  v1::VerifySnapshotResponse vr;
  grpc::Status big = testing::Verify(r.snaps.get(), t.archive, &vr);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big.error_message();

  // A message over the server's size limit.
  grpc::Status huge = testing::Verify(r.snaps.get(), std::string(100 << 10, 'x'), &vr, 100 << 10);
  EXPECT_EQ(huge.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << huge.error_message();

  // One stream at a time; an idle one is ended after the idle timeout. The
  // call refused by gRPC itself (message too large) may hold its slot a
  // moment after its client heard the status: wait until a Take gets through.
  for (absl::Time until = In(absl::Seconds(5)); absl::Now() < until;) {
    if (testing::Take(r.snaps.get()).status.ok()) break;
  }
  // Until the server has seen the idle call, a Take may still get the slot.
  // On a loaded machine the first Take may even reach the server before the
  // idle call does, which is then refused ("already serving"): try again.
  testing::Taken second;
  grpc::Status idle_status;
  absl::Duration idle_finish;
  for (int attempt = 0; attempt < 5; ++attempt) {
    grpc::ClientContext idle_ctx;
    v1::VerifySnapshotResponse idle_resp;
    auto idle = r.snaps->VerifySnapshot(&idle_ctx, &idle_resp);
    for (absl::Time until = In(absl::Seconds(5)); absl::Now() < until;) {
      second = testing::Take(r.snaps.get());
      if (second.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    }
    absl::Time t0 = absl::Now();
    idle_status = idle->Finish();
    idle_finish = absl::Now() - t0;
    if (idle_status.error_message().find("already serving") == std::string::npos) break;
  }
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << second.status.error_message();
  EXPECT_EQ(idle_status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << idle_status.error_message();
  EXPECT_NE(idle_status.error_message().find("idle"), std::string::npos)
      << idle_status.error_message();
  EXPECT_LT(idle_finish, absl::Seconds(5));
  // The slot was freed before the idle call heard its status.
  EXPECT_TRUE(testing::Take(r.snaps.get()).status.ok());
}

TEST(GrpcApi, HealthIsServedOnThePlaintextHealthPortToo) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  const std::string health_addr = absl::StrCat("127.0.0.1:", testing::FreePort());
  c.health_listen = health_addr;
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  EXPECT_TRUE(testing::WaitForHealth(Connect(health_addr), Serving::SERVING, absl::Seconds(5)));
}

TEST(GrpcApi, ReflectionListsTheServices) {
  TempDir dir;
  Running r = StartAgent(SingleAgentConfig(dir.path()));
  ASSERT_NE(r.agent, nullptr);
  namespace refl = grpc::reflection::v1alpha;
  auto stub = refl::ServerReflection::NewStub(Connect(r.agent->address()));
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::set<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.insert(s.name());
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(names.count("snapshot.v1.SnapshotService"));
  EXPECT_TRUE(names.count("snapshot.v1.KeyValueService"));
  EXPECT_TRUE(names.count("grpc.health.v1.Health"));
}

TEST(GrpcApi, NonLoopbackNeedsTlsAndTokensOrInsecure) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  c.listen = "0.0.0.0:0";
  auto a = Agent::Start(c);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("--insecure"), std::string::npos);
  c.insecure = true;
  a = Agent::Start(c);
  EXPECT_TRUE(a.ok()) << a.status();
}

// An archive whose state.bin header claims `claimed` bytes, followed by a
// little real data: a decompression bomb in the making.
std::string ArchiveClaimingState(uint64_t claimed) {
  std::string tar;
  const std::string meta = absl::StrCat(
      R"({"Version":1,"ID":"1-1-1","Index":1,"Term":1,"Peers":null,)"
      R"("Configuration":{"Servers":null},"ConfigurationIndex":0,"Size":)",
      claimed, "}\n");
  tar += tar::EncodeFileHeader("meta.json", meta.size(), 0);
  tar += meta + std::string(tar::PaddingFor(meta.size()), '\0');
  tar += tar::EncodeFileHeader("state.bin", claimed, 0);
  tar += std::string(1 << 20, '\0');
  std::string out;
  StringSink sink(&out);
  auto gz = ZlibGzipCompressor(9)(&sink);
  EXPECT_TRUE(gz.ok());
  EXPECT_TRUE((*gz)->Write(tar).ok());
  EXPECT_TRUE((*gz)->Finish().ok());
  return out;
}

TEST(GrpcApi, VerifyRefusesAStateOverTheLimitFromItsHeader) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  c.service.limits.max_state_bytes = 64 << 20;
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  const std::string bomb = ArchiveClaimingState(uint64_t{7} << 30);
  ASSERT_LT(bomb.size(), 64u << 10);
  v1::VerifySnapshotResponse resp;
  absl::Time t0 = absl::Now();
  grpc::Status s = testing::Verify(r.snaps.get(), bomb, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("state.bin"), std::string::npos) << s.error_message();
  // Refused from the header, not after decompressing gigabytes.
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
}

TEST(GrpcApi, SequentialCallsOnOneChannelNeverHitTheStreamLimit) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  c.service.max_concurrent_streams = 1;
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  ASSERT_TRUE(Put(r.kv.get(), "a", "1").ok());
  testing::Taken t = testing::Take(r.snaps.get());
  ASSERT_TRUE(t.status.ok());
  int refused = 0;
  for (int i = 0; i < 200; ++i) {
    v1::VerifySnapshotResponse resp;
    grpc::Status s = testing::Verify(r.snaps.get(), t.archive, &resp);
    if (!s.ok()) {
      ++refused;
      ADD_FAILURE() << "verify " << i << ": " << s.error_message();
      if (refused > 3) break;
    }
  }
  EXPECT_EQ(refused, 0);
  // Restores too: the stream slot and the restore slot are both free when
  // the client hears the status.
  for (int i = 0; i < 20; ++i) {
    v1::RestoreSnapshotResponse resp;
    grpc::Status s = testing::Restore(r.snaps.get(), t.archive, &resp);
    ASSERT_TRUE(s.ok()) << "restore " << i << ": " << s.error_message();
  }
}

TEST(GrpcApi, TricklingUploadIsEndedAndFreesTheRestoreSlot) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  c.service.idle_timeout = absl::Seconds(1);
  c.service.min_transfer_rate = 10000;  // bytes/s
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  for (int i = 0; i < 100; ++i) {  // incompressible: a few KB of archive
    ASSERT_TRUE(Put(r.kv.get(), absl::StrCat("k", i), HexLower(Sha256Of(absl::StrCat(i)))).ok());
  }
  testing::Taken t = testing::Take(r.snaps.get());
  ASSERT_TRUE(t.status.ok());
  ASSERT_GT(t.archive.size(), 3000u);  // more than 6 s of trickling

  // 100 bytes every 200 ms: never idle, far below 10000 bytes/s.
  grpc::ClientContext ctx;
  v1::RestoreSnapshotResponse resp;
  auto writer = r.snaps->RestoreSnapshot(&ctx, &resp);
  absl::Time t0 = absl::Now();
  for (size_t off = 0; off < t.archive.size(); off += 100) {
    v1::RestoreSnapshotRequest req;
    req.set_chunk(t.archive.substr(off, 100));
    if (!writer->Write(req)) break;
    absl::SleepFor(absl::Milliseconds(200));
    if (absl::Now() - t0 > absl::Seconds(10)) break;
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("--min-transfer-rate"), std::string::npos)
      << s.error_message();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  // The restore slot is free: a normal restore goes through at once.
  v1::RestoreSnapshotResponse ok_resp;
  grpc::Status again = testing::Restore(r.snaps.get(), t.archive, &ok_resp);
  EXPECT_TRUE(again.ok()) << again.error_message();
  EXPECT_TRUE(SpoolFiles(c.data_dir).empty());
}

TEST(GrpcApi, AnotherRestoreRunningIsRetryable) {
  TempDir dir;
  Running r = StartAgent(SingleAgentConfig(dir.path()));
  ASSERT_NE(r.agent, nullptr);
  testing::Taken t = testing::Take(r.snaps.get());
  ASSERT_TRUE(t.status.ok());
  grpc::ClientContext first_ctx;
  v1::RestoreSnapshotResponse first_resp;
  auto first = r.snaps->RestoreSnapshot(&first_ctx, &first_resp);
  v1::RestoreSnapshotRequest half;
  half.set_chunk(t.archive.substr(0, t.archive.size() / 2));
  ASSERT_TRUE(first->Write(half));
  // Once the agent has begun the first restore (its spool file exists), a
  // second one is refused with UNAVAILABLE (retry later), not
  // FAILED_PRECONDITION.
  const std::string data_dir = dir.path() + "/data";
  testing::WaitForChange(
      data_dir, [&] { return !SpoolFiles(data_dir).empty(); }, absl::Seconds(5));
  ASSERT_EQ(SpoolFiles(data_dir).size(), 1u);
  v1::RestoreSnapshotResponse resp;
  grpc::Status second = testing::Restore(r.snaps.get(), t.archive, &resp);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::UNAVAILABLE) << second.error_message();
  EXPECT_NE(second.error_message().find("another restore"), std::string::npos);
  first_ctx.TryCancel();
  first->Finish();
}

TEST(GrpcApi, ListComesInPagesUnderTheDefaultMessageLimit) {
  TempDir dir;
  Running r = StartAgent(SingleAgentConfig(dir.path()));
  ASSERT_NE(r.agent, nullptr);
  constexpr int kValues = 12;  // 12 MiB in all: three times gRPC's default limit
  for (int i = 0; i < kValues; ++i) {
    ASSERT_TRUE(Put(r.kv.get(), absl::StrFormat("big/%02d", i),
                    std::string(kv::kMaxValueBytes, 'a' + i))
                    .ok());
  }
  // A channel with gRPC's default 4 MiB receive limit, as most clients have.
  auto kv = v1::KeyValueService::NewStub(grpc::CreateChannel(
      r.agent->address(), grpc::InsecureChannelCredentials()));
  std::vector<std::string> keys;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListRequest req;
    req.set_prefix("big/");
    req.set_page_token(token);
    v1::ListResponse resp;
    grpc::Status s = kv->List(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_GT(resp.entries_size(), 0);
    EXPECT_LE(resp.ByteSizeLong(), size_t{3} << 20);
    for (const auto& e : resp.entries()) {
      keys.push_back(e.key());
      EXPECT_EQ(e.value().size(), kv::kMaxValueBytes);
    }
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 100);
  ASSERT_EQ(keys.size(), size_t{kValues});
  EXPECT_GE(pages, 6);
  for (int i = 0; i < kValues; ++i) EXPECT_EQ(keys[i], absl::StrFormat("big/%02d", i));
}

TEST(GrpcApi, LoopbackIsDecidedOnTheResolvedAddress) {
  EXPECT_TRUE(*IsLoopbackAddress("127.0.0.1:7150"));
  EXPECT_TRUE(*IsLoopbackAddress("127.3.2.1:7150"));
  EXPECT_TRUE(*IsLoopbackAddress("[::1]:7150"));
  EXPECT_TRUE(*IsLoopbackAddress("localhost:7150"));
  EXPECT_FALSE(*IsLoopbackAddress("127.0.0.1.example.invalid:7150"));
  EXPECT_FALSE(*IsLoopbackAddress("0.0.0.0:7150"));
  EXPECT_FALSE(*IsLoopbackAddress("[::]:7150"));
  EXPECT_FALSE(*IsLoopbackAddress(":7150"));
  EXPECT_FALSE(IsLoopbackAddress("no-port").ok());
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  c.listen = "127.0.0.1.example.invalid:0";
  auto a = Agent::Start(c);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << a.status();
}

TEST(GrpcApi, SecondAgentOnTheSameDirectoryOrPortIsRefused) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  ASSERT_TRUE(Put(r.kv.get(), "kept", "yes").ok());
  // Same data directory, other ports.
  AgentConfig same_dir = SingleAgentConfig(dir.path());
  auto second = Agent::Start(same_dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(c.data_dir), std::string::npos)
      << second.status();
  EXPECT_NE(second.status().message().find(absl::StrCat("pid ", getpid())),
            std::string::npos)
      << second.status();
  // Same listen address, another directory.
  std::filesystem::create_directories(dir.path() + "/other");
  AgentConfig same_port = SingleAgentConfig(dir.path() + "/other");
  same_port.listen = r.agent->address();
  auto third = Agent::Start(same_port);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(third.status().message().find("in use"), std::string::npos)
      << third.status();
  // The first agent is unharmed.
  EXPECT_EQ(Get(r.kv.get(), "kept"), "yes");
}

TEST(GrpcApi, StaleSpoolFilesAreRemovedAtStartUp) {
  TempDir dir;
  AgentConfig c = SingleAgentConfig(dir.path());
  std::filesystem::create_directories(c.data_dir);
  // What a killed agent leaves, and files that only look alike.
  std::ofstream(c.data_dir + "/.restore-Ab12Cd") << std::string(100000, 'x');
  std::ofstream(c.data_dir + "/.restore-keepme-too-long") << "x";
  std::ofstream(c.data_dir + "/restore-Ab12Cd") << "x";
  Running r = StartAgent(c);
  ASSERT_NE(r.agent, nullptr);
  EXPECT_FALSE(std::filesystem::exists(c.data_dir + "/.restore-Ab12Cd"));
  EXPECT_TRUE(std::filesystem::exists(c.data_dir + "/.restore-keepme-too-long"));
  EXPECT_TRUE(std::filesystem::exists(c.data_dir + "/restore-Ab12Cd"));
}

}  // namespace
}  // namespace snapshot
