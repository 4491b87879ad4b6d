// Helpers for tests that run real agents in-process on 127.0.0.1 and talk to
// them over real gRPC channels. For tests only.
#ifndef SNAPSHOT_AGENT_TESTS_AGENT_TESTING_H_
#define SNAPSHOT_AGENT_TESTS_AGENT_TESTING_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "proto/snapshot/v1/snapshot.grpc.pb.h"
#include "raft/testing/cluster.h"
#include "server/agent.h"

namespace snapshot {
namespace testing {

// A config for a single-node agent with fresh ports and data dir under `dir`.
AgentConfig SingleAgentConfig(const std::string& dir);

// Starts `n` agents forming one cluster; waits for a leader. Returns the
// leader's index in `leader`.
std::vector<std::unique_ptr<Agent>> StartAgentCluster(const std::string& dir,
                                                      int n, int* leader);

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

// Names of restore spool files left in `dir`.
std::vector<std::string> SpoolFiles(const std::string& dir);

std::string ReadFile(const std::string& path);

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
