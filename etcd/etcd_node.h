// EtcdNode: the etcd engine — snapshot-agent as a sidecar of one etcd member,
// speaking etcd's v3 API to it (etcd/etcd_client.h). The agent runs no Raft
// node of its own; this class is the only code that speaks etcd's API.
//
//   Status    etcd's Maintenance.Status and Cluster.MemberList of the member.
//   Snapshot  Maintenance.Snapshot streamed straight into the archive (no
//             copy of the database in memory or on disk). state.bin is what
//             `etcdctl snapshot save` writes: the database, then its 32-byte
//             SHA-256, checked while streaming (a mismatch or a short stream
//             is an error, never an archive). Works on any member; the
//             metadata says which member and whether it led the cluster.
//   Restore   only in supervised mode (the agent runs etcd as its child,
//             etcd/supervisor.h): the cluster-wide protocol of
//             etcd/cluster_restore.h. Unsupervised: FAILED_PRECONDITION.
//             ForwardState sends the state to the other members' agents
//             while the upload is still received (supervised, etcd
//             archives only; otherwise nullptr).
//
// Metadata (docs/etcd-engine.md): Index is the member's applied Raft index
// read just before the snapshot was requested: etcd commits everything
// applied so far to its backend before it copies the backend, so the state
// holds every write up to Index (writes applied in the moment between may be
// in it too); Term its Raft term; Configuration the members (name, peer
// URLs); Engine "etcd" and Etcd {ClusterID, MemberID, MemberName, Leader,
// Revision, Version}.
//
// Threading: every method may be called from any thread, concurrently.
// Errors: as engine/node.h and etcd/etcd_client.h.
#ifndef SNAPSHOT_AGENT_ETCD_ETCD_NODE_H_
#define SNAPSHOT_AGENT_ETCD_ETCD_NODE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/node.h"
#include "etcd/etcd_client.h"

namespace snapshot {

class ClusterRestore;

struct EtcdNodeConfig {
  EtcdClientOptions client;
  // The agents of the cluster's members, by etcd member name (this one
  // included): where a restore sends its prepare and commit steps.
  std::map<std::string, std::string> agents;
};

class EtcdNode : public RaftNode {
 public:
  // Connects to the member (and checks that it answers within `deadline`,
  // when `wait` is set). `restore` (borrowed, may be null: unsupervised)
  // carries out restores.
  static absl::StatusOr<std::unique_ptr<EtcdNode>> Create(
      EtcdNodeConfig config, ClusterRestore* restore);

  const char* engine() const override { return kEngineEtcd; }
  absl::StatusOr<NodeStatus> Status(absl::Time deadline) override;
  // etcd serves snapshots from any member: OK whenever the member answers.
  absl::Status CheckLeader(absl::Time deadline) override;
  // Never written: the member's store is at revision 1.
  absl::StatusOr<bool> HoldsNoState(absl::Time deadline) override;
  absl::Status CheckRestore(absl::Time deadline) override;
  absl::StatusOr<CapturedSnapshot> Snapshot(const SnapshotOptions& options,
                                            absl::Time deadline) override;
  using RaftNode::Restore;
  absl::StatusOr<RestoreResult> Restore(const SnapshotMeta& meta,
                                        const StateOpener& open_state, absl::Time deadline,
                                        const BeforeCommit& before_commit) override;
  absl::StatusOr<std::unique_ptr<StateForward>> ForwardState(const SnapshotMeta& meta,
                                                             absl::Time deadline) override;
  absl::StatusOr<RestoreResult> RestoreForwarded(const SnapshotMeta& meta,
                                                 const StateOpener& open_state,
                                                 StateForward* forwarded, absl::Time deadline,
                                                 const BeforeCommit& before_commit) override;

  EtcdClient* client() { return client_.get(); }

 private:
  EtcdNode(EtcdNodeConfig config, std::unique_ptr<EtcdClient> client,
           ClusterRestore* restore)
      : config_(std::move(config)), client_(std::move(client)),
        restore_(restore) {}
  EtcdNodeConfig config_;
  std::unique_ptr<EtcdClient> client_;
  ClusterRestore* restore_;
};

// Parses "NAME=HOST:PORT,..." (etcd member name -> its agent's address).
absl::StatusOr<std::map<std::string, std::string>> ParseEtcdAgents(
    absl::string_view spec);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ETCD_ETCD_NODE_H_
