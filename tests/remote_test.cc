// Agents with a remote store (docs/remote.md) against a real S3 server (Ceph
// RGW on loopback): uploads, listing with locations, fetch and restore of a
// snapshot only the bucket holds, a lost cluster back from the bucket,
// clusters kept apart, a killed agent's upload aborted, configuration the
// store refuses; uploads encrypted with age (read by Debian's age), and
// encrypted objects that no key opens or that were altered.
#include <gtest/gtest.h>

#include <stdio.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/testing.h"
#include "store/testing/fault_proxy.h"
#include "store/testing/rgw_server.h"
#include "tests/agent_testing.h"

namespace snapshot {
namespace {

using grpc::health::v1::HealthCheckResponse;

const char* g_snapshotctl = "snapshotctl";  // argv[1]
using testing::TempDir;

// The shared server, and the agent's credentials from the AWS chain: the
// environment.
class RemoteEnvironment : public testing::RgwEnvironment {
 public:
  void SetUp() override {
    testing::RgwEnvironment::SetUp();
    setenv("AWS_ACCESS_KEY_ID", testing::SharedRgw()->access_key().c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", testing::SharedRgw()->secret_key().c_str(), 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  }
};

AgentConfig RemoteConfig(const std::string& dir, const std::string& prefix,
                         const std::string& cluster) {
  std::filesystem::create_directories(dir);
  AgentConfig c = testing::SingleAgentConfig(dir);
  c.remote_url = absl::StrCat("s3://", testing::SharedRgw()->bucket(), "/", prefix);
  c.remote_s3 = testing::SharedRgw()->Options();
  c.remote.cluster = cluster;
  c.remote.interval = absl::Hours(1);  // passes run when the test says
  return c;
}

struct Running {
  std::unique_ptr<Agent> agent;
  std::unique_ptr<SnapshotClient> client;
};

Running Start(AgentConfig c) {
  Running r;
  auto a = Agent::Start(std::move(c));
  EXPECT_TRUE(a.ok()) << a.status();
  if (!a.ok()) return r;
  r.agent = std::move(*a);
  EXPECT_TRUE(r.agent->embedded()->WaitForLeader(absl::Now() + absl::Seconds(10)).ok());
  r.client = testing::ConnectClient(r.agent->address());
  return r;
}

const v1::CatalogEntry* Find(const v1::ListSnapshotsResponse& l, const std::string& id) {
  for (const auto& e : l.snapshots()) {
    if (e.id() == id) return &e;
  }
  return nullptr;
}

// Rewrites the object `key` with one byte in its middle changed (rot, or
// tampering); returns its bytes as they were ("" on failure).
std::string FlipAByteOf(const std::string& key) {
  auto client = testing::SharedRgw()->NewClient();
  std::string good;
  StringSink sink(&good);
  if (!client->GetObject(key, 0, &sink, 1 << 30).ok() || good.empty()) return "";
  std::string bad = good;
  bad[bad.size() / 2] ^= 0x01;
  if (!client->PutObject(key, bad).ok()) return "";
  return good;
}

// Defined with the encryption tests below.
std::string TakeAndUpload(Running& r, const std::string& value);
absl::StatusOr<std::string> Shell(const std::string& cmd);

TEST(Remote, UploadListFetchAndRestoreFromTheBucket) {
  TempDir dir;
  Running r = Start(RemoteConfig(dir.path() + "/a", "t1", "prod"));
  ASSERT_NE(r.agent, nullptr);
  ASSERT_TRUE(r.client->Put("k", "v1").ok());
  auto created = r.client->CreateSnapshot();
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(r.agent->job()->remote()->Pass().ok());
  auto list = r.client->ListSnapshots();
  ASSERT_TRUE(list.ok()) << list.status();
  const v1::CatalogEntry* e = Find(*list, created->id());
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->location(), "local+remote");
  EXPECT_EQ(e->cluster(), "prod");
  EXPECT_TRUE(testing::WaitForHealth(testing::Connect(r.agent->address()),
                                     HealthCheckResponse::SERVING, absl::Seconds(5),
                                     kRemoteHealthService));

  // Only in the bucket now: listed as remote, fetched and restored by id.
  ASSERT_TRUE(r.client->DeleteSnapshot(created->id()).ok());
  list = r.client->ListSnapshots();
  ASSERT_TRUE(list.ok());
  e = Find(*list, created->id());
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->location(), "remote");
  EXPECT_EQ(e->checksum(), created->checksum());
  ASSERT_TRUE(r.client->Put("k", "v2").ok());
  const std::string fetched = dir.path() + "/fetched.snap";
  auto f = r.client->Fetch(created->id(), fetched, false, false, nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(std::filesystem::file_size(fetched), created->archive_size());
  auto restored = r.client->RestoreStored(created->id());
  ASSERT_TRUE(restored.ok()) << restored.status();
  auto v = r.client->Get("k", false);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(**v, "v1");
  list = r.client->ListSnapshots();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(Find(*list, created->id())->location(), "local+remote");
}

TEST(Remote, ALostClusterComesBackFromTheBucket) {
  TempDir dir;
  std::string id;
  {
    Running old = Start(RemoteConfig(dir.path() + "/old", "t2", "prod"));
    ASSERT_NE(old.agent, nullptr);
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(old.client->Put(absl::StrCat("key", i), std::string(1000, 'a' + i % 26)).ok());
    }
    auto created = old.client->CreateSnapshot();
    ASSERT_TRUE(created.ok()) << created.status();
    id = created->id();
    ASSERT_TRUE(old.agent->job()->remote()->Pass().ok());
  }
  std::filesystem::remove_all(dir.path() + "/old");  // the machine is gone

  Running fresh = Start(RemoteConfig(dir.path() + "/new", "t2", "prod"));
  ASSERT_NE(fresh.agent, nullptr);
  auto list = fresh.client->ListSnapshots();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->snapshots_size(), 1);
  EXPECT_EQ(list->snapshots(0).id(), id);
  EXPECT_EQ(list->snapshots(0).location(), "remote");
  // As an operator would: snapshotctl restore --latest.
  auto restored = Shell(absl::StrCat(g_snapshotctl, " --address=", fresh.agent->address(),
                                     " restore --latest --yes --json"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_NE(restored->find(id), std::string::npos) << *restored;
  auto v = fresh.client->Get("key42", false);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(**v, std::string(1000, 'a' + 42 % 26));
}

TEST(Remote, ClustersUnderOnePrefixStayApart) {
  TempDir dir;
  Running a = Start(RemoteConfig(dir.path() + "/a", "t3", "alpha"));
  ASSERT_NE(a.agent, nullptr);
  auto mine = a.client->CreateSnapshot();
  ASSERT_TRUE(mine.ok());
  ASSERT_TRUE(a.agent->job()->remote()->Pass().ok());

  AgentConfig bc = RemoteConfig(dir.path() + "/b", "t3", "beta");
  bc.remote.retention.keep_last = 1;  // keeps one of its own
  Running b = Start(bc);
  ASSERT_NE(b.agent, nullptr);
  ASSERT_TRUE(b.client->Put("k", "1").ok());
  ASSERT_TRUE(b.client->CreateSnapshot().ok());
  ASSERT_TRUE(b.client->Put("k", "2").ok());
  auto newest = b.client->CreateSnapshot();
  ASSERT_TRUE(newest.ok());
  ASSERT_TRUE(b.agent->job()->remote()->Pass().ok());
  ASSERT_TRUE(b.agent->job()->remote()->Pass().ok());  // retention after the uploads
  auto remote = b.agent->job()->remote()->List(absl::ZeroDuration());
  ASSERT_TRUE(remote.ok()) << remote.status();
  int alpha = 0, beta = 0;
  for (const RemoteEntry& r : *remote) {
    (r.object.cluster == "alpha" ? alpha : beta)++;
    if (r.object.cluster == "beta") {
      EXPECT_EQ(r.entry.id, newest->id());
    }
  }
  EXPECT_EQ(alpha, 1) << "another cluster's snapshot is never deleted";
  EXPECT_EQ(beta, 1);
}

TEST(Remote, AKilledAgentsUploadIsAbortedAtTheNextStart) {
  TempDir dir;
  AgentConfig c = RemoteConfig(dir.path() + "/a", "t4", "prod");
  // What a killed agent leaves: a multipart upload begun, and its record.
  auto client = testing::SharedRgw()->NewClient();
  auto upload = client->CreateMultipartUpload("t4/prod/20261206T000000.000Z-i1-scheduled.snap");
  ASSERT_TRUE(upload.ok());
  std::filesystem::create_directories(c.data_dir + "/remote-uploads");
  testing::WritePrivateFile(c.data_dir + "/remote-uploads/left",
                            "t4/prod/20261206T000000.000Z-i1-scheduled.snap\n" + *upload);
  Running r = Start(c);
  ASSERT_NE(r.agent, nullptr);
  auto uploads = client->ListMultipartUploads("t4/");
  ASSERT_TRUE(uploads.ok());
  EXPECT_TRUE(uploads->empty());
  EXPECT_TRUE(std::filesystem::is_empty(c.data_dir + "/remote-uploads"));
}

TEST(Remote, ConfigurationTheStoreRefusesStopsTheStart) {
  TempDir dir;
  AgentConfig missing = RemoteConfig(dir.path() + "/a", "t5", "prod");
  missing.remote_url = "s3://no-such-bucket/x";
  auto a = Agent::Start(missing);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition) << a.status();
  EXPECT_NE(a.status().message().find("NoSuchBucket"), std::string::npos) << a.status();

  AgentConfig no_name = RemoteConfig(dir.path() + "/b", "t5", "");
  a = Agent::Start(no_name);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("--remote-cluster"), std::string::npos) << a.status();

  const std::string secret = getenv("AWS_SECRET_ACCESS_KEY");
  setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789", 1);
  a = Agent::Start(RemoteConfig(dir.path() + "/c", "t5", "prod"));
  setenv("AWS_SECRET_ACCESS_KEY", secret.c_str(), 1);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition) << a.status();
  // (HEAD answers carry no S3 error code: the message says what it means.)
  EXPECT_NE(a.status().message().find("refused the agent's S3 credentials"), std::string::npos)
      << a.status();
  EXPECT_EQ(a.status().message().find("wrong-secret"), std::string::npos) << a.status();
}


// Three agents: the leader uploads and is stopped; the new leader sees the
// old uploads and continues; then every machine is gone and a new cluster
// with --restore-if-empty comes back from the bucket by itself — and an agent
// whose node holds data is never restored.
TEST(Remote, ThreeAgentsFailOverThenANewClusterComesBackFromTheBucket) {
  TempDir dir;
  auto remote = [&](AgentConfig* c) {
    c->remote_url = absl::StrCat("s3://", testing::SharedRgw()->bucket(), "/c3");
    c->remote_s3 = testing::SharedRgw()->Options();
    c->remote.cluster = "prod";
    c->remote.interval = absl::Hours(1);
  };
  int leader = -1;
  std::filesystem::create_directories(dir.path() + "/old");
  std::filesystem::create_directories(dir.path() + "/new");
  auto agents = testing::StartAgentCluster(dir.path() + "/old", 3, &leader, remote);
  ASSERT_EQ(agents.size(), 3u);
  ASSERT_GE(leader, 0);
  std::string first;
  {
    auto client = testing::ConnectClient(agents[leader]->address());
    ASSERT_TRUE(client->Put("k", "one").ok());
    auto created = client->CreateSnapshot();
    ASSERT_TRUE(created.ok()) << created.status();
    first = created->id();
    ASSERT_TRUE(agents[leader]->job()->remote()->Pass().ok());
    // A follower's agent does not upload (one LIST per pass per cluster).
    for (size_t i = 0; i < agents.size(); ++i) {
      if (static_cast<int>(i) != leader) {
        EXPECT_TRUE(agents[i]->job()->remote()->Pass().ok());
      }
    }
  }
  agents[leader]->Shutdown(absl::Seconds(1));
  agents[leader].reset();
  int next = -1;
  for (int tries = 0; tries < 100 && next < 0; ++tries) {
    for (size_t i = 0; i < agents.size(); ++i) {
      if (agents[i] == nullptr) continue;
      auto st = agents[i]->node()->Status(absl::Now() + absl::Seconds(5));
      if (st.ok() && st->role == Role::kLeader) next = static_cast<int>(i);
    }
    if (next < 0) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_GE(next, 0) << "no new leader";
  std::string second;
  {
    auto client = testing::ConnectClient(agents[next]->address());
    auto list = client->ListSnapshots();
    ASSERT_TRUE(list.ok()) << list.status();
    const v1::CatalogEntry* e = Find(*list, first);
    ASSERT_NE(e, nullptr) << "the new leader lists the old leader's upload";
    EXPECT_EQ(e->location(), "remote");
    EXPECT_EQ(list->remote_cluster(), "prod");
    ASSERT_TRUE(client->Put("k", "two").ok());
    auto created = client->CreateSnapshot();
    ASSERT_TRUE(created.ok()) << created.status();
    second = created->id();
    ASSERT_TRUE(agents[next]->job()->remote()->Pass().ok());
    auto listed = agents[next]->job()->remote()->List(absl::ZeroDuration());
    ASSERT_TRUE(listed.ok());
    ASSERT_EQ(listed->size(), 2u);
    EXPECT_EQ((*listed)[0].entry.id, second);
  }
  agents.clear();
  std::filesystem::remove_all(dir.path() + "/old");

  auto fresh = testing::StartAgentCluster(dir.path() + "/new", 3, &leader, [&](AgentConfig* c) {
    remote(c);
    c->restore_if_empty = true;
  });
  ASSERT_EQ(fresh.size(), 3u);
  ASSERT_GE(leader, 0);
  // The overall health says SERVING once the restore is settled.
  ASSERT_TRUE(testing::WaitForHealth(testing::Connect(fresh[leader]->address()),
                                     HealthCheckResponse::SERVING, absl::Seconds(60)));
  auto client = testing::ConnectClient(fresh[leader]->address());
  auto v = client->Get("k", false);
  ASSERT_TRUE(v.ok() && v->has_value()) << v.status();
  EXPECT_EQ(**v, "two") << "the newest snapshot of the cluster";
  ASSERT_TRUE(client->Put("k", "three").ok());

}

// A node that holds data is never restored by --restore-if-empty, even when
// the bucket holds a snapshot of its cluster.
TEST(Remote, RestoreIfEmptyLeavesANodeWithDataAlone) {
  TempDir dir;
  AgentConfig c = RemoteConfig(dir.path() + "/a", "c4", "prod");
  {
    Running r = Start(c);
    ASSERT_NE(r.agent, nullptr);
    TakeAndUpload(r, "one");
    ASSERT_TRUE(r.client->Put("k", "two").ok());  // newer than the snapshot
  }
  c.restore_if_empty = true;
  Running r = Start(c);
  ASSERT_NE(r.agent, nullptr);
  ASSERT_TRUE(testing::WaitForHealth(testing::Connect(r.agent->address()),
                                     HealthCheckResponse::SERVING, absl::Seconds(30)));
  auto v = r.client->Get("k", false);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(**v, "two");
}

// Stored snapshots are downloaded again in turn and verified; altered bytes
// are found (also in an encrypted object the agent cannot decrypt: its
// SHA-256 recorded at upload).
TEST(Remote, VerificationInTurnFindsAlteredObjects) {
  TempDir dir;
  AgentConfig c = RemoteConfig(dir.path() + "/a", "v1", "prod");
  c.remote.verify_after_upload = true;
  Running r = Start(c);
  ASSERT_NE(r.agent, nullptr);
  RemoteSync* remote = r.agent->job()->remote();
  std::vector<std::string> ids;
  for (const char* v : {"one", "two"}) {
    ASSERT_TRUE(r.client->Put("k", v).ok());
    auto created = r.client->CreateSnapshot();
    ASSERT_TRUE(created.ok()) << created.status();
    ids.push_back(created->id());
  }
  ASSERT_TRUE(remote->Pass().ok());  // both uploaded, each read back
  auto next = remote->VerifyNext();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, ids[1]) << "the newest first";
  next = remote->VerifyNext();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, ids[0]);
  next = remote->VerifyNext();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, ids[1]) << "then the one verified longest ago";

  const std::string key = "v1/prod/" + ids[0] + ".snap";
  ASSERT_FALSE(FlipAByteOf(key).empty());
  next = remote->VerifyNext();
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), absl::StatusCode::kDataLoss) << next.status();
  EXPECT_NE(next.status().message().find(key), std::string::npos) << next.status();
  EXPECT_TRUE(testing::SpoolFiles(c.data_dir).empty());
}

// A store that fails: after --max-failures failed passes the remote's
// health says NOT_SERVING while the API stays SERVING, the snapshot stays
// local, and one good pass brings both back.
TEST(Remote, FailingPassesTurnTheRemoteHealthNotServingUntilOneSucceeds) {
  TempDir dir;
  std::atomic<bool> failing{false};
  testing::FaultProxy proxy(testing::PortOf(testing::SharedRgw()->endpoint()),
                            [&](const testing::FaultProxy::Request&) -> std::string {
                              return failing ? "503" : "";
                            });
  AgentConfig c = RemoteConfig(dir.path() + "/a", "h1", "prod");
  c.remote_s3.endpoint = proxy.endpoint();
  c.remote_s3.max_attempts = 2;
  c.remote.max_failures = 2;
  Running r = Start(c);
  ASSERT_NE(r.agent, nullptr);
  auto channel = testing::Connect(r.agent->address());
  failing = true;
  ASSERT_TRUE(r.client->Put("k", "v").ok());
  auto created = r.client->CreateSnapshot();
  ASSERT_TRUE(created.ok()) << created.status();
  RemoteSync* remote = r.agent->job()->remote();
  absl::Status s = remote->Pass();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("SlowDown"), std::string::npos) << s;
  // (The pass kicked by the stored snapshot may fail too, in the background.)
  EXPECT_FALSE(remote->Pass().ok());
  EXPECT_TRUE(testing::WaitForHealth(channel, HealthCheckResponse::NOT_SERVING, absl::Seconds(5),
                                     kRemoteHealthService));
  EXPECT_TRUE(testing::WaitForHealth(channel, HealthCheckResponse::SERVING, absl::Seconds(5)))
      << "the API itself still serves";
  auto list = r.client->ListSnapshots();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(Find(*list, created->id())->location(), "local") << "kept until it is uploaded";
  failing = false;
  ASSERT_TRUE(remote->Pass().ok());
  EXPECT_TRUE(testing::WaitForHealth(channel, HealthCheckResponse::SERVING, absl::Seconds(5),
                                     kRemoteHealthService));
  list = r.client->ListSnapshots();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(Find(*list, created->id())->location(), "local+remote");
}

// Permissions the bucket's policy denies: without s3:DeleteObject, remote
// retention fails loudly (an error in the log, a metric) and keeps going;
// without s3:ListBucket, every pass fails, naming the policy.
TEST(Remote, DeniedPermissionsAreLoggedAndCounted) {
  TempDir dir;
  const std::string bucket = testing::SharedRgw()->bucket();
  const std::string endpoint = testing::SharedRgw()->endpoint();
  auto policy = [&](const std::string& action, const std::string& resource) {
    return Shell(absl::StrCat(
        "/usr/bin/aws --endpoint-url ", endpoint, " s3api put-bucket-policy --bucket ", bucket,
        " --policy '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",",
        "\"Principal\":\"*\",\"Action\":\"", action, "\",\"Resource\":\"", resource,
        "\"}]}'"));
  };
  auto no_policy = [&] {
    return Shell(absl::StrCat("/usr/bin/aws --endpoint-url ", endpoint,
                              " s3api delete-bucket-policy --bucket ", bucket));
  };
  AgentConfig c = RemoteConfig(dir.path() + "/a", "iam", "prod");
  c.remote.retention = RetentionPolicy{};
  c.remote.retention.keep_last = 1;
  const int metrics_port = testing::FreePort();
  c.metrics_listen = absl::StrCat("127.0.0.1:", metrics_port);
  Running r = Start(c);
  ASSERT_NE(r.agent, nullptr);
  TakeAndUpload(r, "one");
  ASSERT_TRUE(policy("s3:DeleteObject", absl::StrCat("arn:aws:s3:::", bucket, "/iam/*")).ok());
  const char* kFailed = "snapshot_agent_remote_retention_deletes_total{result=\"failure\"}";
  const double failed_before =
      std::max(0.0, testing::MetricSample(testing::ScrapeMetrics(metrics_port), kFailed));
  TakeAndUpload(r, "two");  // retention: the first one must go, and cannot
  EXPECT_GE(testing::MetricSample(testing::ScrapeMetrics(metrics_port), kFailed),
            failed_before + 1);
  auto listed = r.agent->job()->remote()->List(absl::ZeroDuration());
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u) << "nothing was deleted";

  ASSERT_TRUE(policy("s3:ListBucket", absl::StrCat("arn:aws:s3:::", bucket)).ok());
  absl::Status pass = r.agent->job()->remote()->Pass();
  ASSERT_TRUE(no_policy().ok());
  EXPECT_EQ(pass.code(), absl::StatusCode::kFailedPrecondition) << pass;
  EXPECT_NE(pass.message().find("Minimal IAM policy"), std::string::npos) << pass;
  // Allowed again: retention catches up.
  ASSERT_TRUE(r.agent->job()->remote()->Pass().ok());
  listed = r.agent->job()->remote()->List(absl::ZeroDuration());
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
}

// SSE-C: the store encrypts with the agent's key, sent with every archive
// write and read; without the key the object cannot be read.
TEST(Remote, ServerSideEncryptionWithTheCustomersKey) {
  TempDir dir;
  const std::string key_file = dir.path() + "/sse-c.key";
  testing::WritePrivateFile(key_file, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n");
  AgentConfig c = RemoteConfig(dir.path() + "/a", "sse", "prod");
  ASSERT_TRUE(s3::ApplyServerSideEncryption({"", "", key_file}, &c.remote_s3).ok());
  std::string id;
  {
    Running r = Start(c);
    ASSERT_NE(r.agent, nullptr);
    ASSERT_TRUE(r.client->Put("k", "v1").ok());
    auto created = r.client->CreateSnapshot();
    ASSERT_TRUE(created.ok()) << created.status();
    id = created->id();
    ASSERT_TRUE(r.agent->job()->remote()->Pass().ok());
  }
  std::string body;
  StringSink sink(&body);
  auto plain = testing::SharedRgw()->NewClient()->GetObject("sse/prod/" + id + ".snap", 0, &sink,
                                                            1 << 30);
  EXPECT_FALSE(plain.ok()) << "an SSE-C object read without its key";
  AgentConfig fresh = RemoteConfig(dir.path() + "/b", "sse", "prod");
  fresh.remote_s3 = c.remote_s3;
  Running r = Start(fresh);
  ASSERT_NE(r.agent, nullptr);
  auto restored = r.client->RestoreStored(id);
  ASSERT_TRUE(restored.ok()) << restored.status();

  // Keys and combinations that cannot work are refused, naming the flag.
  s3::ClientOptions o;
  testing::WritePrivateFile(dir.path() + "/short.key", "c2hvcnQ=\n");
  auto s = s3::ApplyServerSideEncryption({"", "", dir.path() + "/short.key"}, &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message().find("c2hvcnQ"), std::string::npos) << s;
  chmod(key_file.c_str(), 0644);
  EXPECT_EQ(s3::ApplyServerSideEncryption({"", "", key_file}, &o).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s3::ApplyServerSideEncryption({"AES256", "", key_file}, &o).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s3::ApplyServerSideEncryption({"aes", "", ""}, &o).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s3::ApplyServerSideEncryption({"AES256", "key", ""}, &o).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(s3::ApplyServerSideEncryption({"aws:kms", "arn:aws:kms:k", ""}, &o).ok());
  EXPECT_EQ(o.write_headers.size(), 2u);
}

// --- Encryption (age) --------------------------------------------------------

// Runs a shell command; its standard output (trailing newline removed), or
// the exit status as an error.
absl::StatusOr<std::string> Shell(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError("popen");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) return absl::InternalError(absl::StrCat(cmd, ": exit ", rc));
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// A key made by Debian's age-keygen: the identity file (0600) and a
// recipients file holding its public key.
struct AgeKey {
  std::string identity_file, recipients_file, recipient;
};
AgeKey MakeKey(const std::string& dir, const std::string& name) {
  AgeKey k{dir + "/" + name + ".key", dir + "/" + name + ".pub", ""};
  EXPECT_TRUE(Shell(absl::StrCat("age-keygen -o ", k.identity_file, " 2>/dev/null")).ok())
      << "Debian's age is not installed: run tools/install-deps.sh";
  auto pub = Shell(absl::StrCat("age-keygen -y ", k.identity_file));
  EXPECT_TRUE(pub.ok()) << pub.status();
  k.recipient = pub.ok() ? *pub : "";
  testing::WritePrivateFile(k.recipients_file, "# the backup key\n" + k.recipient + "\n");
  return k;
}

AgentConfig Encrypted(AgentConfig c, const AgeKey& to, const AgeKey* identity) {
  c.encrypt_to_file = to.recipients_file;
  if (identity != nullptr) c.identity_file = identity->identity_file;
  return c;
}

// Takes a snapshot on `r` and uploads it; its id.
std::string TakeAndUpload(Running& r, const std::string& value) {
  EXPECT_TRUE(r.client->Put("k", value).ok());
  auto created = r.client->CreateSnapshot();
  EXPECT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(r.agent->job()->remote()->Pass().ok());
  return created.ok() ? created->id() : "";
}

TEST(RemoteEncryption, UploadsOpenWithDebiansAgeAndRestoreThroughTheAgent) {
  TempDir dir;
  AgeKey key = MakeKey(dir.path(), "backup");
  Running r = Start(Encrypted(RemoteConfig(dir.path() + "/a", "e1", "prod"), key, &key));
  ASSERT_NE(r.agent, nullptr);
  const std::string id = TakeAndUpload(r, "v1");
  auto remote = r.agent->job()->remote()->List(absl::ZeroDuration());
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_EQ(remote->size(), 1u);
  EXPECT_TRUE((*remote)[0].object.encrypted);
  EXPECT_EQ((*remote)[0].object.archive_key, "e1/prod/" + id + ".snap.age");

  // The object is an age file that Debian's age opens into the archive.
  auto client = testing::SharedRgw()->NewClient();
  std::string object;
  StringSink object_sink(&object);
  ASSERT_TRUE(client->GetObject((*remote)[0].object.archive_key, 0, &object_sink, 1 << 30).ok());
  EXPECT_TRUE(absl::StartsWith(object, "age-encryption.org/v1\n"));
  const std::string obj = dir.path() + "/obj.age", out = dir.path() + "/out";
  testing::WritePrivateFile(obj, object);
  std::filesystem::create_directories(out);
  auto listing = Shell(absl::StrCat("age -d -i ", key.identity_file, " ", obj, " | tar -xzvf - -C ",
                                    out));
  ASSERT_TRUE(listing.ok()) << listing.status();
  EXPECT_EQ(*listing, "meta.json\nstate.bin\nSHA256SUMS");
  EXPECT_TRUE(Shell(absl::StrCat("cd ", out, " && sha256sum -c --quiet SHA256SUMS")).ok());

  // Only in the bucket: the agent decrypts, verifies and restores it.
  ASSERT_TRUE(r.client->DeleteSnapshot(id).ok());
  ASSERT_TRUE(r.client->Put("k", "v2").ok());
  auto restored = r.client->RestoreStored(id);
  ASSERT_TRUE(restored.ok()) << restored.status();
  auto v = r.client->Get("k", false);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(**v, "v1");
  EXPECT_TRUE(testing::SpoolFiles(dir.path() + "/a").empty()) << "the ciphertext spool is removed";
}

TEST(RemoteEncryption, WithoutTheKeyOrWithAlteredBytesNothingIsApplied) {
  TempDir dir;
  AgeKey key = MakeKey(dir.path(), "backup"), other = MakeKey(dir.path(), "other");
  std::string id;
  {
    Running r = Start(Encrypted(RemoteConfig(dir.path() + "/a", "e2", "prod"), key, nullptr));
    ASSERT_NE(r.agent, nullptr);
    id = TakeAndUpload(r, "v1");
  }
  const std::string object_key = "e2/prod/" + id + ".snap.age";
  // Each case on a fresh agent holding "v2": the restore by id must fail
  // and leave "v2".
  auto expect_refused = [&](const std::string& name, const AgeKey* identity,
                            absl::StatusCode code, const std::string& words) {
    AgentConfig c = RemoteConfig(dir.path() + "/" + name, "e2", "prod");
    if (identity != nullptr) c.identity_file = identity->identity_file;
    Running r = Start(c);
    ASSERT_NE(r.agent, nullptr);
    ASSERT_TRUE(r.client->Put("k", "v2").ok());
    auto restored = r.client->RestoreStored(id);
    ASSERT_FALSE(restored.ok()) << name;
    EXPECT_EQ(restored.status().code(), code) << name << ": " << restored.status();
    EXPECT_NE(restored.status().message().find(words), std::string::npos)
        << name << ": " << restored.status();
    auto v = r.client->Get("k", false);
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ(**v, "v2") << name;
    auto list = r.client->ListSnapshots();
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(Find(*list, id)->location(), "remote") << name << ": nothing was imported";
    EXPECT_TRUE(testing::SpoolFiles(c.data_dir).empty()) << name;
  };
  expect_refused("nokey", nullptr, absl::StatusCode::kFailedPrecondition, "--identity-file");
  {
    // Without the key, a verification checks the object's recorded hash.
    Running r = Start(RemoteConfig(dir.path() + "/verifier", "e2", "prod"));
    ASSERT_NE(r.agent, nullptr);
    auto next = r.agent->job()->remote()->VerifyNext();
    EXPECT_TRUE(next.ok() && *next == id) << next.status();
  }
  expect_refused("wrongkey", &other, absl::StatusCode::kFailedPrecondition, "identit");

  auto client = testing::SharedRgw()->NewClient();
  const std::string good = FlipAByteOf(object_key);
  ASSERT_FALSE(good.empty());
  expect_refused("flipped", &key, absl::StatusCode::kDataLoss, object_key);
  {
    Running r = Start(RemoteConfig(dir.path() + "/verifier2", "e2", "prod"));
    ASSERT_NE(r.agent, nullptr);
    auto next = r.agent->job()->remote()->VerifyNext();
    EXPECT_EQ(next.status().code(), absl::StatusCode::kDataLoss) << next.status();
    EXPECT_NE(next.status().message().find("recorded when it was uploaded"), std::string::npos)
        << next.status();
  }
  ASSERT_TRUE(client->PutObject(object_key, good.substr(0, good.size() - 7)).ok());
  expect_refused("truncated", &key, absl::StatusCode::kDataLoss, object_key);
  // Put back, the same object restores.
  ASSERT_TRUE(client->PutObject(object_key, good).ok());
  Running r = Start(Encrypted(RemoteConfig(dir.path() + "/ok", "e2", "prod"), key, &key));
  ASSERT_NE(r.agent, nullptr);
  auto restored = r.client->RestoreStored(id);
  EXPECT_TRUE(restored.ok()) << restored.status();
}

// --encrypt-local: the catalog's own files are age files; fetch (resumed
// too), restore by id and the upload read them; the upload is the local
// file byte for byte.
TEST(RemoteEncryption, TheLocalCatalogEncryptedToo) {
  TempDir dir;
  AgeKey key = MakeKey(dir.path(), "backup");
  AgentConfig c = Encrypted(RemoteConfig(dir.path() + "/a", "e4", "prod"), key, &key);
  c.encrypt_local = true;
  Running r = Start(c);
  ASSERT_NE(r.agent, nullptr);
  const std::string id = TakeAndUpload(r, "v1");
  const std::string local = c.data_dir + "/snapshots/" + id + ".snap.age";
  ASSERT_TRUE(std::filesystem::exists(local));
  EXPECT_FALSE(std::filesystem::exists(c.data_dir + "/snapshots/" + id + ".snap"));
  auto listing = Shell(absl::StrCat("age -d -i ", key.identity_file, " ", local, " | tar tzf -"));
  ASSERT_TRUE(listing.ok()) << listing.status();
  EXPECT_EQ(*listing, "meta.json\nstate.bin\nSHA256SUMS");
  std::string object;
  StringSink sink(&object);
  ASSERT_TRUE(testing::SharedRgw()->NewClient()->GetObject("e4/prod/" + id + ".snap.age", 0, &sink,
                                                           1 << 30).ok());
  EXPECT_TRUE(object == testing::ReadFile(local)) << "uploaded as stored";
  // A fetch gets the archive (decrypted by the agent), resumed from a part.
  const std::string fetched = dir.path() + "/f.snap";
  auto f = r.client->Fetch(id, fetched, false, false, nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->checksum(), r.client->ListSnapshots()->snapshots(0).checksum());
  const std::string whole = testing::ReadFile(fetched);
  testing::WritePrivateFile(dir.path() + "/g.snap.part", whole.substr(0, 300));
  auto g = r.client->Fetch(id, dir.path() + "/g.snap", true, false, nullptr);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(testing::ReadFile(dir.path() + "/g.snap") == whole);
  ASSERT_TRUE(r.client->Put("k", "v2").ok());
  auto restored = r.client->RestoreStored(id);
  ASSERT_TRUE(restored.ok()) << restored.status();
  auto v = r.client->Get("k", false);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(**v, "v1");
  // The safety snapshot taken before that restore is encrypted too.
  ASSERT_TRUE(std::filesystem::exists(c.data_dir + "/snapshots/" +
                                      restored->safety_snapshot_id() + ".snap.age"));
}

// An agent without the key serves an encrypted remote snapshot as stored:
// the age file, resumable, checked against the hash recorded at upload;
// snapshotctl fetch --identity turns it into the verified archive.
TEST(RemoteEncryption, AnAgentWithoutTheKeyServesTheObjectAsStored) {
  TempDir dir;
  AgeKey key = MakeKey(dir.path(), "backup");
  std::string id, checksum;
  {
    Running r = Start(Encrypted(RemoteConfig(dir.path() + "/a", "e5", "prod"), key, nullptr));
    ASSERT_NE(r.agent, nullptr);
    id = TakeAndUpload(r, "v1");
    checksum = r.client->ListSnapshots()->snapshots(0).checksum();
  }
  Running r = Start(RemoteConfig(dir.path() + "/b", "e5", "prod"));  // no key
  ASSERT_NE(r.agent, nullptr);
  auto list = r.client->ListSnapshots();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(Find(*list, id)->encrypted());
  std::string object;
  StringSink sink(&object);
  ASSERT_TRUE(testing::SharedRgw()->NewClient()->GetObject("e5/prod/" + id + ".snap.age", 0, &sink,
                                                           1 << 30).ok());
  const std::string file = dir.path() + "/sealed.snap.age";
  testing::WritePrivateFile(file + ".part", object.substr(0, 100));
  auto f = r.client->Fetch(id, file, /*resume=*/true, false, nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->encrypted());
  EXPECT_EQ(f->checksum(), checksum) << "the entry describes the archive inside";
  EXPECT_TRUE(testing::ReadFile(file) == object);
  // A part that is not a prefix of the object is refused.
  testing::WritePrivateFile(file + "2.part", std::string(100, 'x'));
  auto bad = r.client->Fetch(id, file + "2", true, false, nullptr);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  // snapshotctl decrypts it with the key.
  const std::string out = dir.path() + "/opened.snap";
  auto fetched = Shell(absl::StrCat(g_snapshotctl, " --address=", r.agent->address(),
                                    " fetch --identity=", key.identity_file, " --json ", id, " ",
                                    out));
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_NE(fetched->find("\"encrypted\":false"), std::string::npos) << *fetched;
  auto inspected = Shell(absl::StrCat(g_snapshotctl, " inspect --json ", out));
  ASSERT_TRUE(inspected.ok()) << inspected.status();
  EXPECT_NE(inspected->find(checksum), std::string::npos) << *inspected;
}

TEST(RemoteEncryption, UnusableEncryptionRefusesToStart) {
  TempDir dir;
  AgeKey key = MakeKey(dir.path(), "backup"), other = MakeKey(dir.path(), "other");
  auto refused = [&](AgentConfig c, absl::StatusCode code, const std::string& words) {
    auto a = Agent::Start(std::move(c));
    ASSERT_FALSE(a.ok()) << words;
    EXPECT_EQ(a.status().code(), code) << a.status();
    EXPECT_NE(a.status().message().find(words), std::string::npos) << a.status();
    EXPECT_EQ(a.status().message().find("AGE-SECRET-KEY"), std::string::npos) << a.status();
  };
  AgentConfig base = RemoteConfig(dir.path() + "/a", "e3", "prod");
  AgeKey missing = key;
  missing.recipients_file = dir.path() + "/nothing.pub";
  refused(Encrypted(base, missing, nullptr), absl::StatusCode::kNotFound, "--encrypt-to");
  AgeKey malformed = key;
  malformed.recipients_file = dir.path() + "/bad.pub";
  testing::WritePrivateFile(malformed.recipients_file, "age1notakey\n");
  refused(Encrypted(base, malformed, nullptr), absl::StatusCode::kInvalidArgument, "bad.pub");
  // A secret key given as the recipients file (an easy mix-up).
  AgeKey swapped = key;
  swapped.recipients_file = key.identity_file;
  refused(Encrypted(base, swapped, nullptr), absl::StatusCode::kInvalidArgument, "--encrypt-to");
  refused(Encrypted(base, key, &other), absl::StatusCode::kInvalidArgument,
          "could not read its own uploads back");
  chmod(key.identity_file.c_str(), 0644);
  refused(Encrypted(base, key, &key), absl::StatusCode::kFailedPrecondition, "chmod 600");
  chmod(key.identity_file.c_str(), 0600);
  AgentConfig no_remote = testing::SingleAgentConfig(dir.path() + "/b");
  std::filesystem::create_directories(dir.path() + "/b");
  no_remote.encrypt_to_file = key.recipients_file;
  refused(no_remote, absl::StatusCode::kInvalidArgument, "--remote");
  AgentConfig local_only = base;
  local_only.encrypt_to_file = key.recipients_file;
  local_only.encrypt_local = true;
  refused(local_only, absl::StatusCode::kInvalidArgument, "--identity-file");
  // Nothing reached the bucket.
  auto objects = testing::SharedRgw()->NewClient()->ListObjects("e3/");
  ASSERT_TRUE(objects.ok());
  EXPECT_TRUE(objects->empty());
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc > 1) snapshot::g_snapshotctl = argv[1];
  ::testing::AddGlobalTestEnvironment(new snapshot::RemoteEnvironment());
  return RUN_ALL_TESTS();
}
