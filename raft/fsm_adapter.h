// FsmAdapter: the key-value state machine (raft/kv_fsm.h) as libraft's
// raft_fsm (version 2): apply, the engine's own compaction snapshots and
// their finalize, restore from a snapshot — and the policy that compacts the
// log at once after a committed user restore. Part of the embedded engine;
// the only other file that sees raft.h besides embedded_node.cc.
//
// Threading: loop thread only (libraft calls the callbacks there; Attach
// before raft_start). Ownership: the adapter must outlive the raft instance
// it is attached to; the raft, mailbox and kv state are its own or borrowed
// as documented on Attach.
#ifndef SNAPSHOT_AGENT_RAFT_FSM_ADAPTER_H_
#define SNAPSHOT_AGENT_RAFT_FSM_ADAPTER_H_

extern "C" {
#include <raft.h>
}

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "raft/kv_fsm.h"
#include "raft/loop.h"

namespace snapshot {

class FsmAdapter {
 public:
  // Fills `fsm` with this adapter's callbacks. `raft` (whose snapshot
  // settings it changes around a restore's compaction, back to `threshold`
  // and `trailing`) and `mailbox` (for work on the next loop turn) are
  // borrowed; `raft_id` names the node in logs.
  void Attach(struct raft_fsm* fsm, struct raft* raft, LoopMailbox* mailbox, uint64_t raft_id,
              unsigned threshold, unsigned trailing);

  kv::KvFsm& kv() { return kv_; }

 private:
  // What the buffers of an engine snapshot in flight point into, by the
  // address of their array: released at finalize.
  struct SnapshotHold {
    kv::FsmImage image;
    std::deque<std::string> arena;
  };

  static int Apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result);
  static int Snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs);
  static int SnapshotFinalize(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs);
  static int Restore(struct raft_fsm* fsm, struct raft_buffer* buf);
  void CompactAfterRestore();

  kv::KvFsm kv_;
  struct raft* raft_ = nullptr;
  LoopMailbox* mailbox_ = nullptr;
  uint64_t raft_id_ = 0;
  unsigned threshold_ = 0;
  unsigned trailing_ = 0;
  // Index of a committed restore whose compaction is pending (0: none).
  uint64_t compact_at_ = 0;
  std::map<const raft_buffer*, std::unique_ptr<SnapshotHold>> holds_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_FSM_ADAPTER_H_
