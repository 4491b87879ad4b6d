// EmbeddedNode: a real Raft node inside the agent process, built on
// Canonical's libraft 0.15.0 with libuv I/O (Debian 12), replicating the
// key-value state machine of raft/kv_fsm.h. This is the only package that
// includes raft.h; see ../shared/RAFT_NOTES.md for the defects worked around.
//
// Threading: one libuv loop thread owns the raft instance and the state
// machine. Public methods post closures to it (a mutex-protected queue and a
// uv_async_t) and wait with a deadline; request state lives in shared_ptrs, so
// a callback that fires after the caller gave up is harmless. Slow work for
// callers (serializing a user snapshot, hashing, validating a restore) runs
// on the caller's thread, never on the loop. The engine's own log-compaction
// snapshots are assembled on the loop (libraft 0.15's libuv I/O offers no
// asynchronous snapshots) without copying the state: libraft gets the
// captured, immutable view in pieces, values of 4 KiB or more referenced in
// place and only headers, keys and small values copied (docs/restore.md).
//
// Durability: the Raft log, its snapshots and the term/vote live under
// `data_dir`; the state survives a clean stop and a kill -9 (auto-recovery is
// off, so a damaged log stops start-up loudly instead of dropping entries).
//
// Known limitations of the Debian 12 engine: the whole state is held in
// memory (libraft snapshots are memory buffers); libraft 0.15.0 may commit
// entries of older terms by counting replicas (Raft paper, figure 8; fixed
// upstream in 0.17.1).
#ifndef SNAPSHOT_AGENT_RAFT_EMBEDDED_NODE_H_
#define SNAPSHOT_AGENT_RAFT_EMBEDDED_NODE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/sha256.h"
#include "engine/node.h"
#include "raft/config.h"

namespace snapshot {

class EmbeddedNode : public RaftNode, public KeyValueStore {
 public:
  // Checks the configuration, the data directory (exists or can be created,
  // writable) and the Raft address (free), then starts the node. A fresh
  // data directory is bootstrapped with the peer list. Errors:
  // INVALID_ARGUMENT (config), FAILED_PRECONDITION (data dir, port in use),
  // INTERNAL (the engine failed to start, with its message).
  static absl::StatusOr<std::unique_ptr<EmbeddedNode>> Start(
      EmbeddedNodeConfig config);

  // Stops the node (Stop()).
  ~EmbeddedNode() override;

  // Closes Raft cleanly and joins the loop thread. Pending calls fail with
  // UNAVAILABLE. Idempotent.
  void Stop();

  const char* engine() const override { return kEngineEmbedded; }
  absl::StatusOr<NodeStatus> Status(absl::Time deadline) override;
  absl::Status CheckLeader(absl::Time deadline) override;
  absl::StatusOr<CapturedSnapshot> Snapshot(const SnapshotOptions& options,
                                            absl::Time deadline) override;
  using RaftNode::Restore;
  absl::StatusOr<RestoreResult> Restore(const SnapshotMeta& meta,
                                        const StateOpener& open_state, absl::Time deadline,
                                        const BeforeCommit& before_commit) override;

  absl::StatusOr<uint64_t> Put(const std::string& key, const std::string& value,
                               absl::Time deadline) override;
  absl::StatusOr<uint64_t> Delete(const std::string& key,
                                  absl::Time deadline) override;
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key,
                                                 bool allow_stale,
                                                 absl::Time deadline) override;
  // No key, read linearizably (leader only).
  absl::StatusOr<bool> HoldsNoState(absl::Time deadline) override;
  absl::StatusOr<ListPage> List(const ListOptions& options,
                                absl::Time deadline) override;

  // Waits until this node knows a leader (itself or another).
  absl::Status WaitForLeader(absl::Time deadline);

  // The applied index and the SHA-256 of the serialized key-value state at
  // that index, read from this node's own state machine (no Raft round
  // trip). For comparing nodes.
  absl::StatusOr<std::pair<uint64_t, Digest>> StateDigest(absl::Time deadline);

  struct Impl;

 private:
  explicit EmbeddedNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_EMBEDDED_NODE_H_
