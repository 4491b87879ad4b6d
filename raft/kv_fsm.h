// KvFsm: the embedded engine's state machine — what every node applies, in
// log order. Engine-independent: the libraft adapter calls it from its FSM
// callbacks; tests call it directly.
//
// Besides the key-value data it holds the staging area of a restore in
// progress (restore through the log: begin, chunks, commit) and the ids of
// recent restores, so that a repeated commit is a no-op. Both are part of the
// FSM's own snapshots, so a node that catches up through InstallSnapshot in
// the middle of a restore ends with the same state as the others.
//
// Threading: not thread-safe; owned by the Raft loop thread. Capture() gives
// an immutable FsmImage that may be serialized on any thread.
#ifndef SNAPSHOT_AGENT_RAFT_KV_FSM_H_
#define SNAPSHOT_AGENT_RAFT_KV_FSM_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/sha256.h"
#include "raft/command.h"
#include "raft/kv_state.h"

namespace snapshot {
namespace kv {

// Outcome of applying one entry, reported to the proposer through libraft's
// result pointer (apply itself never fails: RAFT_NOTES, defect 4).
enum ApplyResult : int {
  kApplied = 0,
  kBadEntry = 1,            // an entry that does not decode (never written by us)
  kNoSuchRestore = 2,       // chunk or commit for a restore not staged here
  kRestoreIncomplete = 3,   // commit: staged length or SHA-256 do not match
  kRestoreInvalidState = 4, // commit: staged bytes are not a valid state
};
const char* ApplyResultName(int r);

struct Staging {
  std::string id;
  uint64_t size = 0;
  Digest sha256{};
  uint64_t received = 0;
  std::vector<std::shared_ptr<const std::string>> chunks;
};

// An immutable image of the whole FSM, for the FSM's own snapshots.
struct FsmImage {
  StateView kv;
  std::deque<std::string> committed_restores;
  std::optional<Staging> staging;  // chunks are shared and immutable
  // The envelope libraft stores: "SAFS" | version | kv state | restores |
  // staging. Whole in memory (libraft takes snapshots as buffers).
  std::string Serialize() const;
};

class KvFsm {
 public:
  ApplyResult Apply(absl::string_view entry);

  const KvState& state() const { return state_; }
  bool RestoreCommitted(const std::string& id) const;
  const std::optional<Staging>& staging() const { return staging_; }

  FsmImage Capture() const;
  // Replaces everything with a serialized FsmImage (InstallSnapshot or
  // start-up). INTERNAL when the envelope is malformed; nothing changes then.
  absl::Status Load(absl::string_view image);

 private:
  ApplyResult Commit(const std::string& id);

  KvState state_;
  std::optional<Staging> staging_;
  std::deque<std::string> committed_restores_;  // most recent last
};

}  // namespace kv
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_KV_FSM_H_
