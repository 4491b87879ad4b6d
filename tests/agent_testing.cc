#include "tests/agent_testing.h"

#include "base/subprocess.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"

namespace snapshot {
namespace testing {

std::unique_ptr<SnapshotClient> ConnectClient(const std::string& address) {
  ClientOptions o;
  o.address = address;
  auto c = SnapshotClient::Connect(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

AgentConfig SingleAgentConfig(const std::string& dir) {
  AgentConfig c;
  c.listen = "127.0.0.1:0";  // the kernel picks; Agent::address() tells
  c.node.id = 1;
  c.node.raft_address = absl::StrCat("127.0.0.1:", FreePort());
  c.data_dir = dir + "/data";
  c.node.election_timeout_ms = 500;
  c.node.heartbeat_timeout_ms = 50;
  return c;
}

std::vector<std::unique_ptr<Agent>> StartAgentCluster(
    const std::string& dir, int n, int* leader,
    const std::function<void(AgentConfig*)>& adjust) {
  std::vector<Member> peers;
  std::vector<std::string> listens;
  for (int i = 0; i < n; ++i) {
    Member m;
    m.id = i + 1;
    m.raft_address = absl::StrCat("127.0.0.1:", FreePort());
    m.agent_address = absl::StrCat("127.0.0.1:", FreePort());
    peers.push_back(m);
  }
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < n; ++i) {
    AgentConfig c;
    c.listen = peers[i].agent_address;
    c.node.id = peers[i].id;
    c.node.raft_address = peers[i].raft_address;
    c.node.agent_address = peers[i].agent_address;
    c.node.peers = peers;
    c.data_dir = absl::StrCat(dir, "/agent", i + 1);
    c.node.election_timeout_ms = 500;
    c.node.heartbeat_timeout_ms = 50;
    if (adjust) adjust(&c);
    auto a = Agent::Start(c);
    if (!a.ok()) {
      ADD_FAILURE() << a.status();
      return {};
    }
    agents.push_back(std::move(*a));
  }
  *leader = -1;
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (*leader < 0 && absl::Now() < deadline) {
    for (int i = 0; i < n; ++i) {
      auto st = agents[i]->embedded()->Status(absl::Now() + absl::Seconds(10));
      bool all_know = true;
      for (auto& a : agents) {
        auto s2 = a->embedded()->Status(absl::Now() + absl::Seconds(10));
        if (!s2.ok() || s2->leader_id == 0) all_know = false;
      }
      if (st.ok() && st->role == Role::kLeader && all_know) *leader = i;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return agents;
}

std::shared_ptr<grpc::Channel> Connect(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  // Agents in tests start and restart within a second: reconnect quickly
  // instead of backing off for seconds.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel(
      address, creds ? creds : grpc::InsecureChannelCredentials(), args);
}

static void AddToken(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

Taken Take(v1::SnapshotService::Stub* stub, v1::TakeSnapshotRequest req,
           const std::string& token) {
  Taken t;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  AddToken(&ctx, token);
  auto reader = stub->TakeSnapshot(&ctx, req);
  v1::TakeSnapshotResponse resp;
  while (reader->Read(&resp)) {
    t.order.push_back(resp.message_case());
    switch (resp.message_case()) {
      case v1::TakeSnapshotResponse::kMetadata:
        t.metadata = resp.metadata();
        break;
      case v1::TakeSnapshotResponse::kChunk:
        t.archive += resp.chunk();
        break;
      case v1::TakeSnapshotResponse::kTrailer:
        t.trailer = resp.trailer();
        break;
      default:
        break;
    }
  }
  t.status = reader->Finish();
  return t;
}

grpc::Status Verify(v1::SnapshotService::Stub* stub, const std::string& archive,
                    v1::VerifySnapshotResponse* resp, size_t chunk,
                    const std::string& token) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  AddToken(&ctx, token);
  auto writer = stub->VerifySnapshot(&ctx, resp);
  for (size_t off = 0; off < archive.size(); off += chunk) {
    v1::VerifySnapshotRequest req;
    req.set_chunk(archive.substr(off, chunk));
    if (!writer->Write(req)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

grpc::Status Restore(v1::SnapshotService::Stub* stub, const std::string& archive,
                     v1::RestoreSnapshotResponse* resp,
                     const std::string& expected_checksum,
                     const std::string& token) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  AddToken(&ctx, token);
  auto writer = stub->RestoreSnapshot(&ctx, resp);
  if (!expected_checksum.empty()) {
    v1::RestoreSnapshotRequest opts;
    opts.mutable_options()->set_expected_checksum(expected_checksum);
    writer->Write(opts);
  }
  for (size_t off = 0; off < archive.size(); off += 65536) {
    v1::RestoreSnapshotRequest req;
    req.set_chunk(archive.substr(off, 65536));
    if (!writer->Write(req)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

std::vector<std::string> SpoolFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(".restore-", 0) == 0) out.push_back(name);
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void MakeCertificates(const std::string& d, const std::string& p) {
  std::string script = absl::StrCat(
      "set -e; cd '", d, "';",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ", p, "ca.key -out ",
      p, "ca.crt -days 1 -subj /CN=", p, "test-ca 2>/dev/null;",
      "openssl req -newkey rsa:2048 -nodes -keyout ", p, "server.key -out ", p,
      "server.csr -subj /CN=127.0.0.1 2>/dev/null;",
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > ", p, "san.ext;",
      "openssl x509 -req -in ", p, "server.csr -CA ", p, "ca.crt -CAkey ", p,
      "ca.key -CAcreateserial -out ", p, "server.crt -days 1 -extfile ", p,
      "san.ext 2>/dev/null;",
      "openssl req -newkey rsa:2048 -nodes -keyout ", p, "client.key -out ", p,
      "client.csr -subj /CN=backup-client 2>/dev/null;",
      "openssl x509 -req -in ", p, "client.csr -CA ", p, "ca.crt -CAkey ", p,
      "ca.key -CAcreateserial -out ", p, "client.crt -days 1 2>/dev/null;",
      "chmod 600 ", p, "*.key");
  ASSERT_EQ(system(script.c_str()), 0);
}

void WritePrivateFile(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
}

void Spawn(Daemon* d, const std::string& program,
           const std::vector<std::string>& args, const std::string& log,
           const std::vector<std::string>& env) {
  SubprocessOptions o;
  o.argv.push_back(program);
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env = env;
  o.output_path = log;
  o.append_output = true;
  absl::StatusOr<Subprocess> p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok()) << p.status();
  d->pid = p->Release();
}

// Waits until the agent answers GetStatus (with `token`) and knows a leader.

std::string ScrapeMetrics(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

double MetricSample(const std::string& metrics, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, prefix)) {
      double v;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) return v;
    }
  }
  return -1;
}

double ProcStatusMiB(pid_t pid, const std::string& field, const std::string& file) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/", file));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, field + ":")) return std::stod(line.substr(field.size() + 1)) / 1024;
  }
  return -1;
}

int MainWithAgentPath(int argc, char** argv, const char** agent) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH_TO_SNAPSHOT_AGENT [gtest flags]\n", argv[0]);
    return 2;
  }
  *agent = argv[1];
  return RUN_ALL_TESTS();
}

bool WaitForHealth(const std::shared_ptr<grpc::Channel>& channel,
                   grpc::health::v1::HealthCheckResponse::ServingStatus want,
                   absl::Duration timeout, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  const absl::Time until = absl::Now() + timeout;
  // The stream ends when the agent is not up yet; then it is opened again
  // (wait_for_ready holds the call until the channel connects).
  while (absl::Now() < until) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(absl::ToChronoTime(until));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    auto reader = stub->Watch(&ctx, req);
    grpc::health::v1::HealthCheckResponse r;
    bool seen = false;
    while (!seen && reader->Read(&r)) seen = r.status() == want;
    ctx.TryCancel();
    reader->Finish();
    if (seen) return true;
  }
  return false;
}

bool WaitForChange(const std::string& path, const std::function<bool()>& done,
                   absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << "inotify_init1: " << strerror(errno);
    return false;
  }
  // Watched before the first look, so no change between them is missed.
  (void)inotify_add_watch(fd, path.c_str(),
                          IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                              IN_CLOSE_WRITE | IN_DELETE_SELF);
  bool ok = done();
  while (!ok && absl::Now() < until) {
    struct pollfd p = {fd, POLLIN, 0};
    // Bounded wait: `path` may not exist yet (no watch), or change in a way
    // inotify does not report (a file created later under a new directory).
    int ms = static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(until - absl::Now()), 500));
    if (poll(&p, 1, std::max(ms, 0)) > 0) {
      char buf[4096];
      while (read(fd, buf, sizeof(buf)) > 0) {
      }
    }
    ok = done();
  }
  close(fd);
  return ok;
}

bool WaitForLog(const std::string& log, const std::string& text, absl::Duration timeout) {
  return WaitForChange(
      log, [&] { return ReadFile(log).find(text) != std::string::npos; }, timeout);
}

}  // namespace testing
}  // namespace snapshot
