// Restoring a user snapshot into a running cluster through the Raft log
// (libraft has no such call; ../shared/RAFT_NOTES.md, "Restoring a user
// snapshot"): a begin entry (restore id, size), chunk entries of at most
// 4 MiB, and a commit entry carrying the CRC-64 of the whole state, which
// every node checks against what it received before it swaps its state
// atomically (raft/kv_fsm.h). The commands are in raft/command.h.
//
// One pass over the state: each chunk is read, hashed and checked to be
// this engine's format as it is proposed, and up to kRestoreWindow chunks
// are in flight at once, so that libraft batches their disk writes and
// replication instead of paying a round trip and an fsync per chunk. A fault
// in the state found before the first proposal changes nothing; one found
// later, or any failed proposal, is followed by an abort entry that drops
// the staging everywhere (the commit is never proposed, so nothing changes).
// docs/restore.md has the design and its measurements.
//
// "Leadership lost" does not mean "not applied": after a failed commit
// proposal the outcome is confirmed from this node's own state machine
// (the restore id is remembered), so a restore is never reported failed when
// it took effect. Errors as engine/node.h's Restore.
//
// Threading: RestoreThroughLog blocks the calling thread (never the loop).
#ifndef SNAPSHOT_AGENT_RAFT_RESTORE_LOG_H_
#define SNAPSHOT_AGENT_RAFT_RESTORE_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/node.h"
#include "raft/loop.h"

namespace snapshot {

// What applying one proposed entry gave: its log index and the state
// machine's result (kv::ApplyResult).
struct ApplyOutcome {
  uint64_t index = 0;
  int result = 0;
};

// The node as the restore protocol needs it.
class ReplicatedLog {
 public:
  virtual ~ReplicatedLog() = default;
  virtual absl::Status CheckLeader(absl::Time deadline) = 0;
  // Proposes `entry` without waiting; the waiter is set once the entry is
  // applied on this node, or with the failure. Entries proposed in turn
  // from one thread are appended to the log in that order.
  virtual std::shared_ptr<Waiter<ApplyOutcome>> ProposeAsync(std::string entry) = 0;
  // Proposes `entry` and waits until it is applied on this node.
  absl::StatusOr<ApplyOutcome> Propose(std::string entry, absl::Time deadline) {
    return ProposeAsync(std::move(entry))->Wait(deadline);
  }
  // Whether this node's state machine has committed restore `id`, and its
  // applied index.
  virtual absl::StatusOr<std::pair<bool, uint64_t>> RestoreCommitted(
      const std::string& id, absl::Time deadline) = 0;
};

// Chunk entries in flight at once (4 MiB each).
inline constexpr size_t kRestoreWindow = 8;

// `before_commit` (may be null) runs after the last chunk is applied on
// this node, before the commit is proposed (engine/node.h's BeforeCommit).
absl::StatusOr<RestoreResult> RestoreThroughLog(ReplicatedLog* log,
                                                const SnapshotMeta& meta,
                                                const StateOpener& open_state,
                                                absl::Time deadline,
                                                const BeforeCommit& before_commit = nullptr);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_RESTORE_LOG_H_
