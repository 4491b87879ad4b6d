// Agent: one snapshot-agent — an embedded Raft node and the gRPC server in
// front of it (SnapshotService, KeyValueService, grpc.health.v1.Health,
// server reflection). The daemon's main() is flag parsing around this; tests
// start agents in-process the same way.
//
// Threading: Start/Shutdown from one controlling thread. Ownership: the agent
// owns its node and server.
#ifndef SNAPSHOT_AGENT_SERVER_AGENT_H_
#define SNAPSHOT_AGENT_SERVER_AGENT_H_

#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "raft/embedded_node.h"
#include "server/auth.h"
#include "server/service.h"

namespace snapshot {

struct AgentConfig {
  // host:port of the gRPC server.
  std::string listen = "127.0.0.1:7150";
  EmbeddedNodeConfig node;
  // spool_dir and auth are filled in by Start (data dir, token file).
  ServiceOptions service;
  // TLS: server certificate chain and key (PEM files). With client_ca set,
  // clients must present a certificate signed by it (mutual TLS).
  std::string tls_cert, tls_key, tls_client_ca;
  // Bearer tokens ("ROLE TOKEN" lines); empty = no authentication.
  std::string token_file;
  // Needed to listen on a non-loopback address without TLS and tokens.
  bool insecure = false;
  // Largest gRPC message received.
  int max_message_bytes = 8 << 20;
  // Optional host:port of a plaintext server that offers only
  // grpc.health.v1.Health (for Kubernetes gRPC probes, which cannot speak
  // TLS). It carries no data and needs no token.
  std::string health_listen;
};

class Agent {
 public:
  // Validates the configuration (INVALID_ARGUMENT), starts the Raft node
  // (errors as EmbeddedNode::Start), waits up to 3 s for it to know a leader,
  // and starts the gRPC server (FAILED_PRECONDITION when the address cannot
  // be bound).
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentConfig config);
  ~Agent();

  // Stops accepting calls, lets running ones finish for up to `grace`,
  // cancels the rest, then closes the Raft node. Idempotent.
  void Shutdown(absl::Duration grace);

  const std::string& address() const { return address_; }
  EmbeddedNode* node() { return node_.get(); }

 private:
  Agent() = default;
  void WatchHealth();

  std::string address_;
  std::unique_ptr<EmbeddedNode> node_;
  std::unique_ptr<TokenAuth> auth_;
  std::unique_ptr<SnapshotServiceImpl> snapshots_;
  std::unique_ptr<KeyValueServiceImpl> kv_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // optional, health only
  std::thread health_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// True for 127.0.0.0/8, ::1 and "localhost" hosts of a host:port address.
bool IsLoopbackAddress(const std::string& address);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_AGENT_H_
