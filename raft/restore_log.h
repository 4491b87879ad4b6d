// Restoring a user snapshot into a running cluster through the Raft log
// (libraft has no such call; ../shared/RAFT_NOTES.md, "Restoring a user
// snapshot"): the state is checked to be this engine's, then replicated as a
// begin entry (restore id, size, SHA-256), chunk entries of at most 4 MiB and
// a commit entry that checks length and hash and swaps the state atomically
// on every node (raft/kv_fsm.h). The commands are in raft/command.h.
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
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/node.h"

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
  // Proposes `entry` and waits until it is applied on this node.
  virtual absl::StatusOr<ApplyOutcome> Propose(std::string entry,
                                               absl::Time deadline) = 0;
  // Whether this node's state machine has committed restore `id`, and its
  // applied index.
  virtual absl::StatusOr<std::pair<bool, uint64_t>> RestoreCommitted(
      const std::string& id, absl::Time deadline) = 0;
};

absl::StatusOr<RestoreResult> RestoreThroughLog(ReplicatedLog* log,
                                                const SnapshotMeta& meta,
                                                const StateOpener& open_state,
                                                absl::Time deadline);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_RESTORE_LOG_H_
