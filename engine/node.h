// RaftNode: the one interface through which the agent drives the local Raft
// node. The gRPC layer uses this and nothing else; engines implement it: the
// embedded libraft node (raft/embedded_node.h) and etcd, whose member the
// agent runs beside (etcd/etcd_node.h).
//
// What an engine may relax, and must then say in its header: CheckLeader and
// Snapshot may accept a follower when the engine's own snapshot is
// consistent there (etcd's is: any member streams its whole database), and
// Restore may run from any node when the engine coordinates the cluster
// itself (the etcd engine's supervised mode). Everything else holds for
// every engine.
//
// Threading: every method may be called from any thread, concurrently. Calls
// block until done or until `deadline`; a call that gives up returns
// DEADLINE_EXCEEDED (the operation may still complete in the background —
// see Restore for how that is made safe).
//
// Errors (absl::Status), chosen by what the caller should do next:
//   FAILED_PRECONDITION  wrong node or state: not the leader (the message
//                        names the leader, by node id and agent address), or
//                        the input is not this engine's state.
//   UNAVAILABLE          no leader right now (election, lost quorum); retry.
//   DEADLINE_EXCEEDED    the deadline passed first.
//   INVALID_ARGUMENT     a key, value or option outside its limits.
//   RESOURCE_EXHAUSTED   a restore larger than the engine accepts.
//   ABORTED              a restore whose outcome could not be confirmed
//                        (leadership changed after the commit was proposed);
//                        check Status()/the data before retrying.
//   INTERNAL             an engine fault (I/O error in the Raft log, ...).
#ifndef SNAPSHOT_AGENT_ENGINE_NODE_H_
#define SNAPSHOT_AGENT_ENGINE_NODE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/io.h"
#include "base/sha256.h"
#include "base/snapshot_meta.h"

namespace snapshot {

enum class Role { kUnavailable, kFollower, kCandidate, kLeader };
const char* RoleName(Role r);

struct Member {
  uint64_t id = 0;
  std::string raft_address;
  std::string agent_address;  // gRPC address of that node's agent, if known
  bool voter = true;
};

struct NodeStatus {
  uint64_t id = 0;
  std::string raft_address;
  Role role = Role::kUnavailable;
  uint64_t leader_id = 0;  // 0 when no leader is known
  std::string leader_raft_address;
  std::string leader_agent_address;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  std::vector<Member> members;
};

struct SnapshotOptions {
  // Allow a snapshot of a follower's applied state. Such a snapshot may lag
  // the leader; `stale` is set in the result.
  bool allow_stale = false;
};

struct CapturedSnapshot {
  // index/term/configuration of the snapshot; size = bytes `state` yields.
  SnapshotMeta meta;
  // True when taken from a follower's applied state (allow_stale); then
  // meta.index is that node's applied index and meta.term its current term
  // (which may be newer than the term of the entry at that index).
  bool stale = false;
  // The state bytes: exactly meta.size of them, in the engine's serialized
  // form. Owns what it needs (it stays valid after the node moves on) and
  // may be read on any thread; reading is the slow part, done off the Raft
  // loop.
  std::unique_ptr<ByteSource> state;
};

// Opens a fresh reader of the state to restore. Restore may call it more
// than once, so it must yield the same bytes each time.
using StateOpener = std::function<absl::StatusOr<std::unique_ptr<ByteSource>>()>;

// Called by Restore once the new state is staged wherever it must be, just
// before the point from which it takes effect (the commit): an error from it
// aborts the restore, nothing changes, and Restore returns that error. It
// may block (the agent waits there for its safety snapshot of the state
// being replaced to be durable, taken meanwhile); it runs on the thread that
// called Restore, at most once, and not at all when the restore fails
// before it.
using BeforeCommit = std::function<absl::Status()>;

// A restore's state, passed on while the upload that carries it is still
// being received and verified (RaftNode::ForwardState), so that it travels
// to where it will be applied meanwhile (the etcd engine: to the other
// members' agents). The bytes written are not verified yet: nothing is built
// from them before Verified, and nothing applied before RestoreForwarded.
// Destroyed before that (the upload failed), what was forwarded is dropped
// wherever it went. Write returns an error of the far end (a member that
// refused the restore) as soon as it is known.
// Threading: Write, then Verified, from one thread at a time; then
// RestoreForwarded may use it from another. Owned by whoever called
// ForwardState; must not outlive the node.
class StateForward : public ByteSink {
 public:
  // Every state byte was written and the archive they came from verified
  // (checksums, limits, the expected checksum): their SHA-256.
  virtual void Verified(const Digest& state_sha256) = 0;
};

struct RestoreResult {
  // Log index at which the restored state took effect.
  uint64_t index = 0;
};

class RaftNode {
 public:
  virtual ~RaftNode() = default;

  // The engine's name as archives record it (meta.json "Engine"):
  // kEngineEmbedded, kEngineEtcd, ...
  virtual const char* engine() const = 0;

  // The node's view of the cluster, waiting at most until `deadline`.
  virtual absl::StatusOr<NodeStatus> Status(absl::Time deadline) = 0;

  // OK when this node is the leader; otherwise the error a leader-only call
  // would get (FAILED_PRECONDITION naming the leader, or UNAVAILABLE when no
  // leader is known). For refusing early, before receiving a large upload.
  virtual absl::Status CheckLeader(absl::Time deadline) = 0;

  // True when the cluster holds no state at all, so that a restore cannot
  // lose anything (--restore-if-empty): an engine that cannot tell says
  // false. Leader only where the answer needs the leader's view.
  virtual absl::StatusOr<bool> HoldsNoState(absl::Time deadline) {
    (void)deadline;
    return false;
  }

  // OK when a Restore sent to this node can be carried out (checked before
  // an upload is received); otherwise the error Restore would give. By
  // default: CheckLeader.
  virtual absl::Status CheckRestore(absl::Time deadline) {
    return CheckLeader(deadline);
  }

  // A consistent point-in-time snapshot: the bytes hold exactly the writes
  // with index <= meta.index (engines that cannot be that exact say how
  // their index relates to the bytes). meta.engine is set. On a follower: FAILED_PRECONDITION naming the
  // leader, unless options.allow_stale.
  virtual absl::StatusOr<CapturedSnapshot> Snapshot(
      const SnapshotOptions& options, absl::Time deadline) = 0;

  // Replaces the state of the whole cluster with `meta.size` bytes of state
  // from `open_state`, atomically: on any failure the state stays exactly as
  // it was. Leader only (or wherever the engine restores from). The agent has
  // already refused an archive of another engine (meta.engine set and not
  // this one). Engines need not serialize concurrent restores (the
  // agent runs one at a time, core/snapshot_ops.h); when two overlap, at
  // most one takes effect, never a mix. Bytes that are not this engine's
  // state are refused (FAILED_PRECONDITION, e.g. for a Nomad snapshot),
  // their start before anything is proposed. `before_commit` (may be null):
  // see BeforeCommit.
  virtual absl::StatusOr<RestoreResult> Restore(const SnapshotMeta& meta,
                                                const StateOpener& open_state,
                                                absl::Time deadline,
                                                const BeforeCommit& before_commit) = 0;
  // Called when a restore's upload has shown its metadata (meta.json, not
  // verified yet), before its state arrives: an engine that can move the
  // state while it is received returns a StateForward, to which the agent
  // writes every state byte as it arrives; nullptr (the default): the engine
  // takes the state from Restore's opener only. An error is the one Restore
  // would give, found early (a member busy or unreachable): the upload ends.
  virtual absl::StatusOr<std::unique_ptr<StateForward>> ForwardState(const SnapshotMeta& meta,
                                                                     absl::Time deadline) {
    (void)meta;
    (void)deadline;
    return std::unique_ptr<StateForward>();
  }
  // Restore of a state that was also written to `forwarded` (from this
  // node's ForwardState, Verified; borrowed; null: none). By default:
  // Restore, ignoring it.
  virtual absl::StatusOr<RestoreResult> RestoreForwarded(const SnapshotMeta& meta,
                                                         const StateOpener& open_state,
                                                         StateForward* forwarded,
                                                         absl::Time deadline,
                                                         const BeforeCommit& before_commit) {
    (void)forwarded;
    return Restore(meta, open_state, deadline, before_commit);
  }
  // Restore without a hook.
  absl::StatusOr<RestoreResult> Restore(const SnapshotMeta& meta, const StateOpener& open_state,
                                        absl::Time deadline) {
    return Restore(meta, open_state, deadline, nullptr);
  }
};

struct ListOptions {
  std::string prefix;
  // Only keys strictly greater than this one (empty: from the first).
  std::string start_after;
  size_t limit = 1000;
  uint64_t max_bytes = 1 << 20;
  // Answer from this node's applied state (any node), not linearizable.
  bool allow_stale = false;
};

struct ListPage {
  std::vector<std::pair<std::string, std::string>> entries;
  // True when more matching entries follow the last one returned.
  bool more = false;
};

// The key-value interface of engines that have one (the embedded node), for
// users and tests to see data go round. Same threading and errors as
// RaftNode.
class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;
  // Writes go through the log (leader only). Returns the entry's index.
  virtual absl::StatusOr<uint64_t> Put(const std::string& key,
                                       const std::string& value,
                                       absl::Time deadline) = 0;
  virtual absl::StatusOr<uint64_t> Delete(const std::string& key,
                                          absl::Time deadline) = 0;
  // Reads are linearizable on the leader (a barrier first); with
  // `allow_stale` any node answers from its applied state.
  virtual absl::StatusOr<std::optional<std::string>> Get(
      const std::string& key, bool allow_stale, absl::Time deadline) = 0;
  // One page of the entries whose key starts with options.prefix, in key
  // order, after options.start_after: at most options.limit entries, and no
  // more entries once options.max_bytes of keys and values are reached (a
  // page always holds at least one entry when there is one). Pages are read
  // at different moments: a listing by pages is not a snapshot.
  virtual absl::StatusOr<ListPage> List(const ListOptions& options,
                                        absl::Time deadline) = 0;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ENGINE_NODE_H_
