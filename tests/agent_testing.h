// Helpers for tests that run real agents in-process on 127.0.0.1 and talk to
// them over real gRPC channels. For tests only.
#ifndef SNAPSHOT_AGENT_TESTS_AGENT_TESTING_H_
#define SNAPSHOT_AGENT_TESTS_AGENT_TESTING_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "client/client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/snapshot/v1/snapshot.grpc.pb.h"
#include "raft/testing/cluster.h"
#include "server/agent.h"

namespace snapshot {
namespace testing {

// The client library connected to the agent at `address` (nullptr, with a
// test failure, when it cannot connect).
std::unique_ptr<SnapshotClient> ConnectClient(const std::string& address);

// A config for a single-node agent with fresh ports and data dir under `dir`.
AgentConfig SingleAgentConfig(const std::string& dir);

// Starts `n` agents forming one cluster; waits for a leader. Returns the
// leader's index in `leader`.
std::vector<std::unique_ptr<Agent>> StartAgentCluster(
    const std::string& dir, int n, int* leader,
    const std::function<void(AgentConfig*)>& adjust = nullptr);

std::shared_ptr<grpc::Channel> Connect(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> creds = nullptr);

struct Taken {
  grpc::Status status;
  std::vector<v1::TakeSnapshotResponse::MessageCase> order;
  v1::SnapshotMetadata metadata;
  v1::SnapshotTrailer trailer;
  std::string archive;
};
Taken Take(v1::SnapshotService::Stub* stub, v1::TakeSnapshotRequest req = {},
           const std::string& token = "");

grpc::Status Verify(v1::SnapshotService::Stub* stub, const std::string& archive,
                    v1::VerifySnapshotResponse* resp, size_t chunk = 65536,
                    const std::string& token = "");

grpc::Status Restore(v1::SnapshotService::Stub* stub, const std::string& archive,
                     v1::RestoreSnapshotResponse* resp,
                     const std::string& expected_checksum = "",
                     const std::string& token = "");

// Waits, on the standard health service's Watch stream (the agent pushes every
// change), until `service` ("" = the agent overall: SERVING while its node
// knows a leader) reports `want`. False when `timeout` passes first.
bool WaitForHealth(
    const std::shared_ptr<grpc::Channel>& channel,
    grpc::health::v1::HealthCheckResponse::ServingStatus want, absl::Duration timeout,
    const std::string& service = "");

// Waits until `done()` holds, looking again each time something changes at
// `path` (a directory: an entry created, written, renamed or removed; a file:
// written), by inotify. For files written by an agent or another process,
// which have no event of their own. False when `timeout` passes first.
bool WaitForChange(const std::string& path, const std::function<bool()>& done,
                   absl::Duration timeout);

// Waits until `text` appears in the file `log`.
bool WaitForLog(const std::string& log, const std::string& text,
                absl::Duration timeout = absl::Seconds(10));

// The text of the agent's Prometheus endpoint on 127.0.0.1:`port` ("" when
// it does not answer).
std::string ScrapeMetrics(int port);
// The value of the sample whose name and labels start with `prefix` in
// `metrics` (-1: none).
double MetricSample(const std::string& metrics, const std::string& prefix);

// A /proc/PID/status field in kB ("VmRSS", "VmHWM"), as MiB; -1 if absent.
// `file` names another /proc/PID file of "Field: N kB" lines
// ("smaps_rollup": "AnonHugePages").
double ProcStatusMiB(pid_t pid, const std::string& field, const std::string& file = "status");

// Names of restore spool files left in `dir`.
std::vector<std::string> SpoolFiles(const std::string& dir);

std::string ReadFile(const std::string& path);

// main() of a test whose first argument is the snapshot-agent binary: sets
// *agent to it (exits 2 when it is missing) and runs the tests.
int MainWithAgentPath(int argc, char** argv, const char** agent);

// A child process, killed (SIGKILL) and reaped when the object goes away.
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

// Starts `program` with `args` (base/subprocess.h); its stdout and stderr go
// to `log` (appended); `env` entries ("NAME=value") are added to its
// environment.
void Spawn(Daemon* d, const std::string& program,
           const std::vector<std::string>& args, const std::string& log,
           const std::vector<std::string>& env = {});

// Makes, in directory `d`, a CA (PREFIXca.crt/.key), a server certificate for
// 127.0.0.1 and localhost (PREFIXserver.crt/.key) and a client certificate
// (PREFIXclient.crt/.key), with openssl. Keys are mode 0600.
void MakeCertificates(const std::string& d, const std::string& prefix = "");

// Writes `text` to `path` with mode 0600 (token files must not be readable
// by others).
void WritePrivateFile(const std::string& path, const std::string& text);

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_TESTS_AGENT_TESTING_H_
