// The snapshot-agent binary as an operator runs it: a real child process,
// stopped with SIGTERM while a TakeSnapshot is in flight with a client that
// stopped reading. It must end the stream, close Raft and exit 0 within its
// grace period, log one line per RPC, and keep its data for the next start.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "raft/testing/cluster.h"
#include "tests/agent_testing.h"

namespace snapshot {
namespace {

const char* g_agent = nullptr;

struct Daemon {
  pid_t pid = -1;
  ~Daemon() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  // Exit status, or -1 if it did not exit before the deadline.
  int WaitExit(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return -1;
  }
};

void Spawn(Daemon* d, const std::vector<std::string>& args,
           const std::string& log) {
  d->pid = fork();
  ASSERT_GE(d->pid, 0);
  if (d->pid == 0) {
    FILE* f = freopen(log.c_str(), "a", stderr);
    (void)f;
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(g_agent));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(g_agent, argv.data());
    _exit(127);
  }
}

bool WaitServing(v1::SnapshotService::Stub* stub) {
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    v1::GetStatusResponse st;
    if (stub->GetStatus(&ctx, v1::GetStatusRequest(), &st).ok() &&
        st.leader_id() != 0) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

TEST(Daemon, SigtermDuringTakeEndsCleanly) {
  ASSERT_NE(g_agent, nullptr);
  testing::TempDir dir;
  const std::string listen = absl::StrCat("127.0.0.1:", testing::FreePort());
  const std::vector<std::string> args = {
      "--data-dir=" + dir.path() + "/data", "--listen=" + listen,
      absl::StrCat("--raft-address=127.0.0.1:", testing::FreePort()),
      "--shutdown-grace=1s"};
  const std::string log = dir.path() + "/agent.log";
  Daemon d;
  Spawn(&d, args, log);
  auto ch = testing::Connect(listen);
  auto snaps = v1::SnapshotService::NewStub(ch);
  auto kv = v1::KeyValueService::NewStub(ch);
  ASSERT_TRUE(WaitServing(snaps.get()));

  // About 32 MiB of incompressible state: more than flow-control windows
  // and socket buffers can absorb while the client does not read.
  std::mt19937_64 rng(3);
  std::string value(64 << 10, '\0');
  for (int i = 0; i < 500; ++i) {
    for (char& c : value) c = static_cast<char>(rng());
    grpc::ClientContext ctx;
    v1::PutRequest req;
    req.set_key(absl::StrCat("blob/", i));
    req.set_value(value);
    v1::PutResponse resp;
    ASSERT_TRUE(kv->Put(&ctx, req, &resp).ok());
  }

  grpc::ClientContext ctx;
  v1::TakeSnapshotRequest req;
  req.set_chunk_size(16384);
  auto reader = snaps->TakeSnapshot(&ctx, req);
  v1::TakeSnapshotResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_TRUE(resp.has_metadata());
  ASSERT_TRUE(reader->Read(&resp));
  // Stop reading: the server blocks on flow control. Now stop the daemon.
  absl::Time t0 = absl::Now();
  ASSERT_EQ(kill(d.pid, SIGTERM), 0);
  int code = d.WaitExit(absl::Seconds(10));
  EXPECT_EQ(code, 0) << "snapshot-agent did not exit cleanly:\n"
                     << testing::ReadFile(log);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(6));
  // The client's stream ends without a trailer and with an error.
  bool trailer = false;
  while (reader->Read(&resp)) trailer = trailer || resp.has_trailer();
  grpc::Status s = reader->Finish();
  EXPECT_FALSE(trailer);
  EXPECT_FALSE(s.ok());

  std::string text = testing::ReadFile(log);
  EXPECT_NE(text.find("msg=rpc method=Put"), std::string::npos) << text;
  EXPECT_NE(text.find("msg=rpc method=TakeSnapshot"), std::string::npos) << text;
  EXPECT_NE(text.find("msg=\"shutting down\" signal=SIGTERM"), std::string::npos) << text;
  EXPECT_NE(text.find("level=info msg=stopped"), std::string::npos) << text;

  // Restart on the same data: everything is there.
  Daemon again;
  Spawn(&again, args, log);
  ASSERT_TRUE(WaitServing(snaps.get()));
  grpc::ClientContext gctx;
  v1::GetRequest get;
  get.set_key("blob/499");
  v1::GetResponse got;
  ASSERT_TRUE(kv->Get(&gctx, get, &got).ok());
  EXPECT_TRUE(got.found());
  EXPECT_EQ(got.value(), value);
  kill(again.pid, SIGTERM);
  EXPECT_EQ(again.WaitExit(absl::Seconds(10)), 0);
}

TEST(Daemon, BadFlagsGiveAClearErrorAndExitCode) {
  ASSERT_NE(g_agent, nullptr);
  testing::TempDir dir;
  const std::string log = dir.path() + "/agent.log";
  Daemon d;
  Spawn(&d, {"--data-dir=" + dir.path() + "/data", "--peers=1=nonsense"}, log);
  EXPECT_EQ(d.WaitExit(absl::Seconds(10)), 2);
  EXPECT_NE(testing::ReadFile(log).find("malformed peer"), std::string::npos);
  Daemon e;
  Spawn(&e, {"--data-dir=" + dir.path() + "/no/such/dir"}, log);
  EXPECT_EQ(e.WaitExit(absl::Seconds(10)), 1);
  EXPECT_NE(testing::ReadFile(log).find("cannot create data directory"),
            std::string::npos);
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc > 1) snapshot::g_agent = argv[1];
  return RUN_ALL_TESTS();
}
