// Agent: one snapshot-agent — the engine it drives (the embedded Raft node,
// or an etcd member: docs/etcd-engine.md) and the gRPC server in front of it
// (SnapshotService, KeyValueService for the embedded engine,
// EtcdRestoreService between supervised etcd agents, grpc.health.v1.Health,
// server reflection). The daemon's main() is flag parsing around this; tests
// start agents in-process the same way. The engine is chosen here and only
// here: the services see a RaftNode.
//
// Start-up, in order: the listen address is checked (a non-loopback address
// needs TLS and tokens, or `insecure`); the data directory is locked (a
// second agent on it is refused, naming the holder's pid); restore spool
// files left by a killed agent are removed; the engine starts; the snapshot
// catalog is opened (and locked) and the schedule starts; the gRPC server
// binds without SO_REUSEPORT, so a second agent on the same address fails
// instead of sharing the port; the metrics endpoint starts.
//
// Threading: Start/Shutdown from one controlling thread; Reload from any
// thread (e.g. a signal handler thread). Ownership: the agent owns its
// engine, servers and lock.
#ifndef SNAPSHOT_AGENT_SERVER_AGENT_H_
#define SNAPSHOT_AGENT_SERVER_AGENT_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/io.h"
#include "core/snapshot_ops.h"
#include "etcd/cluster_restore.h"
#include "etcd/etcd_node.h"
#include "raft/embedded_node.h"
#include "server/auth.h"
#include "server/etcd_peer.h"
#include "server/etcd_restore_service.h"
#include "server/metrics.h"
#include "server/service.h"
#include "core/snapshot_job.h"
#include "server/tls.h"
#include "store/remote_store.h"
#include "store/s3/client.h"

namespace snapshot {

// The etcd engine's settings (docs/etcd-engine.md).
struct EtcdAgentConfig {
  // The member's endpoint, TLS and auth, and the agents of all members.
  EtcdNodeConfig node;
  // Supervised mode: etcd's command line; the agent runs etcd as its child
  // and can restore. Empty: unsupervised (Take and Verify only).
  std::string exec;
  std::string etcdctl = "etcdctl";
  bool keep_pre_restore = false;
  // How to reach the other agents (restore steps).
  PeerOptions peers;
  absl::Duration resolve_after = absl::Seconds(60);
};

struct AgentConfig {
  // host:port of the gRPC server.
  std::string listen = "127.0.0.1:7150";
  // The agent's directory: locked while the agent runs; holds the embedded
  // engine's Raft data and restore spool files. Created (0700) if missing.
  std::string data_dir;
  // Which engine the agent drives: kEngineEmbedded (default) or kEngineEtcd.
  std::string engine = kEngineEmbedded;
  // The embedded engine (its data_dir is set to data_dir by Start).
  EmbeddedNodeConfig node;
  // The etcd engine.
  EtcdAgentConfig etcd;
  // auth is filled in by Start (token file).
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
  // Connections that hold a descriptor for nothing are closed: one whose
  // handshake (TLS, HTTP/2 preface) is not done in `handshake_timeout`, one
  // without a call for `max_connection_idle` (clients reconnect at their
  // next call). The cap on connections is the process's descriptor limit
  // (LimitNOFILE in deploy/systemd): at the cap new connections wait in the
  // kernel's accept queue until one of these timeouts frees a descriptor.
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration max_connection_idle = absl::Seconds(60);
  // Optional host:port of a plaintext server that offers only
  // grpc.health.v1.Health (for Kubernetes gRPC probes, which cannot speak
  // TLS). It carries no data and needs no token.
  std::string health_listen;
  // The catalog, schedule and retention (core/snapshot_job.h). An empty
  // job.snapshot_dir means DATA_DIR/snapshots; job.take is filled by Start.
  JobOptions job;
  // The remote store (docs/remote.md): "s3://BUCKET/PREFIX", empty for none;
  // remote_s3's bucket is filled from it, remote's journal_dir and
  // max_archive_bytes by Start.
  std::string remote_url;
  s3::ClientOptions remote_s3;
  RemoteOptions remote;
  int remote_parallel = 4;  // parts in flight per upload
  // age encryption of uploads (docs/remote.md, "Encryption"): a recipients
  // file ("age1..." lines, as `age -R`) and an identity file (age-keygen's
  // form, mode 0600). Start loads them into remote's recipients and
  // identities, and refuses to start when they cannot be used: unreadable,
  // malformed, or an identity that opens none of the recipients' files.
  std::string encrypt_to_file;
  std::string identity_file;
  // --encrypt-local: the catalog's files too are encrypted to encrypt_to's
  // recipients (needs both files; no remote needed).
  bool encrypt_local = false;
  // --restore-if-empty=latest (core/restore_if_empty.h): in the background
  // after start, the leader's agent restores the newest remote snapshot into
  // a node that holds no state; the overall health says NOT_SERVING until
  // that is settled. Needs remote_url.
  bool restore_if_empty = false;
  // Optional host:port of the plaintext Prometheus endpoint (/metrics).
  std::string metrics_listen;
};

class Agent {
 public:
  // Starts an agent (see the header comment). Errors: INVALID_ARGUMENT for
  // the configuration; FAILED_PRECONDITION for a data directory in use or an
  // address that cannot be bound (in use, not of this machine); errors of
  // the engine's start.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentConfig config);
  ~Agent();

  // Re-reads the token file and the TLS files. What loads is used for calls
  // and handshakes from then on; what fails to load keeps its old value and
  // is reported. Returns one line per part ("tokens: ...", "tls: ...").
  // The engine is not touched.
  absl::StatusOr<std::string> Reload();

  // Stops accepting calls, lets running ones finish for up to `grace`,
  // cancels the rest, then closes the engine. Idempotent.
  void Shutdown(absl::Duration grace);

  const std::string& address() const { return address_; }
  // The engine.
  RaftNode* node() { return node_.get(); }
  // The embedded engine's node (null with another engine), for tests.
  EmbeddedNode* embedded() { return embedded_; }
  // The catalog and schedule.
  SnapshotJob* job() { return job_.get(); }

 private:
  Agent() = default;
  void WatchHealth();
  void RunRestoreIfEmpty();
  // Records the health of the schedule or the remote store and tells the
  // health service(s).
  void SetHealth(const char* service, bool healthy);
  absl::StatusOr<std::unique_ptr<RemoteStore>> OpenRemote(AgentConfig* config);
  // Checks the options that need a remote (or --encrypt-local) and loads
  // the age keys into config->remote.
  static absl::Status CheckRemoteAndLoadKeys(AgentConfig* config);
  // The steps of Start, in order (each fills the members it names).
  absl::Status LoadCredentials(const AgentConfig& config);  // tls_, auth_
  absl::Status OpenDataDir(const std::string& dir);         // lock_, stale spools
  // Starts the configured engine (node_ and friends); StopEngine closes it.
  absl::Status StartEngine(AgentConfig* config);
  void StopEngine();
  absl::Status StartJob(AgentConfig* config);  // restorer_, job_
  void StartServices(AgentConfig* config);     // snapshots_, kv_, etcd_service_
  absl::Status StartServers(const AgentConfig& config);  // server_, health_server_

  std::string address_;
  std::unique_ptr<DirLock> lock_;
  // The etcd engine's supervised mode (before node_: destroyed after it).
  std::unique_ptr<EtcdClient> etcd_client_;
  std::unique_ptr<ClusterRestore> etcd_restore_;
  std::unique_ptr<RaftNode> node_;
  EmbeddedNode* embedded_ = nullptr;
  std::unique_ptr<Restorer> restorer_;
  std::unique_ptr<SnapshotJob> job_;
  std::unique_ptr<prometheus::Exposer> metrics_;
  std::unique_ptr<Authorizer> auth_;
  std::unique_ptr<ReloadableTls> tls_;
  std::unique_ptr<SnapshotServiceImpl> snapshots_;
  std::unique_ptr<KeyValueServiceImpl> kv_;  // embedded engine only
  std::unique_ptr<EtcdRestoreServiceImpl> etcd_service_;  // supervised etcd
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // optional, health only
  std::thread health_;
  std::thread restore_if_empty_;
  std::atomic<bool> settling_{false};  // a restore-if-empty still running
  std::atomic<bool> shutting_down_{false};
  absl::Duration restore_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool schedule_healthy_ = true;  // guarded by mu_
  bool remote_healthy_ = true;    // guarded by mu_
};

// Whether a host:port address is local to this machine: its host resolves
// only to loopback addresses (127.0.0.0/8, ::1). A host that does not
// resolve is not local. INVALID_ARGUMENT when `address` is not HOST:PORT.
absl::StatusOr<bool> IsLoopbackAddress(const std::string& address);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_AGENT_H_
