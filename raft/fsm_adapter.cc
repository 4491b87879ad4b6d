#include "raft/fsm_adapter.h"

#include <malloc.h>

#include <algorithm>
#include <vector>

#include "base/log.h"

namespace snapshot {

void FsmAdapter::Attach(struct raft_fsm* fsm, struct raft* raft, LoopMailbox* mailbox,
                        uint64_t raft_id, unsigned threshold, unsigned trailing) {
  raft_ = raft;
  mailbox_ = mailbox;
  raft_id_ = raft_id;
  threshold_ = threshold;
  trailing_ = trailing;
  memset(fsm, 0, sizeof(*fsm));
  fsm->version = 2;
  fsm->data = this;
  fsm->apply = &FsmAdapter::Apply;
  fsm->snapshot = &FsmAdapter::Snapshot;
  fsm->snapshot_finalize = &FsmAdapter::SnapshotFinalize;
  fsm->restore = &FsmAdapter::Restore;
}

int FsmAdapter::Apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result) {
  auto* self = static_cast<FsmAdapter*>(fsm->data);
  int r = self->kv_.Apply(absl::string_view(static_cast<const char*>(buf->base), buf->len));
  if (self->kv_.TakeRestoreCommitted()) self->CompactAfterRestore();
  // Never fail here: a non-zero return stops libraft's apply loop
  // (RAFT_NOTES, defect 4). The outcome travels in the result pointer.
  *result = reinterpret_cast<void*>(static_cast<intptr_t>(r));
  return 0;
}

// A committed restore leaves its chunks (the whole state again) in the log,
// in memory and on disk, until the next snapshot — 8192 entries away by
// default. So the engine takes one at once: threshold 1 makes libraft
// snapshot right after this apply, trailing 0 drops every entry up to it.
// The configured values come back once that snapshot is stored
// (SnapshotFinalize). A follower that had not received all the chunks yet
// gets the new state by InstallSnapshot, as after any compaction.
void FsmAdapter::CompactAfterRestore() {
  compact_at_ = raft_last_applied(raft_) + 1;  // this entry's index
  raft_set_snapshot_threshold(raft_, 1);
  raft_set_snapshot_trailing(raft_, 0);
}

// The engine's own snapshot (log compaction). libraft 0.15.0's libuv I/O has
// no async_work, so FSM version 3 (serialize off the loop) is refused, and
// this runs on the loop thread. It does not serialize: the buffers it hands
// libraft are the image's pieces (FsmImage::Pieces), which reference the
// values where the captured view holds them (immutable: later writes copy
// the shards they touch) and copy only headers, keys and small values. So
// the loop no longer copies a state of large values (256 MiB took it 0.3-1 s
// on three nodes sharing two cores, up to the election timeout; the longest
// stretch is now ~0.15 s). libraft writes (and compresses) the buffers on its
// thread pool and gives them back at finalize, where the image is released.
// snapshot_threshold keeps this rare. (User snapshots via
// EmbeddedNode::Snapshot do not come through here.)
int FsmAdapter::Snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs) {
  auto* self = static_cast<FsmAdapter*>(fsm->data);
  auto hold = std::make_unique<SnapshotHold>();
  hold->image = self->kv_.Capture();
  const std::vector<absl::string_view> pieces = hold->image.Pieces(&hold->arena);
  auto* out = static_cast<struct raft_buffer*>(
      raft_malloc(sizeof(raft_buffer) * std::max<size_t>(pieces.size(), 1)));
  if (out == nullptr) return RAFT_NOMEM;
  for (size_t i = 0; i < pieces.size(); ++i) {
    out[i].base = const_cast<char*>(pieces[i].data());  // libraft only reads them
    out[i].len = pieces[i].size();
  }
  self->holds_[out] = std::move(hold);
  *bufs = out;
  *n_bufs = static_cast<unsigned>(pieces.size());
  return 0;
}

// With finalize set (FSM version 2) the buffers stay ours: release what they
// point into. After the snapshot that follows a restore, the configured
// snapshot settings come back and the memory the old state and the chunks
// held goes back to the system.
int FsmAdapter::SnapshotFinalize(struct raft_fsm* fsm, struct raft_buffer* bufs[],
                                 unsigned* n_bufs) {
  auto* self = static_cast<FsmAdapter*>(fsm->data);
  if (*bufs != nullptr) {
    self->holds_.erase(*bufs);
    raft_free(*bufs);
  }
  *bufs = nullptr;
  *n_bufs = 0;
  if (self->compact_at_ != 0 && self->raft_->snapshot.pending.index >= self->compact_at_) {
    self->compact_at_ = 0;
    // On the next loop turn, once libraft has dropped the log prefix
    // (whichever order it calls finalize and truncates in).
    self->mailbox_->Post([self] {
      raft_set_snapshot_threshold(self->raft_, self->threshold_);
      raft_set_snapshot_trailing(self->raft_, self->trailing_);
      malloc_trim(0);
    });
  }
  return 0;
}

int FsmAdapter::Restore(struct raft_fsm* fsm, struct raft_buffer* buf) {
  auto* self = static_cast<FsmAdapter*>(fsm->data);
  absl::Status s =
      self->kv_.Load(absl::string_view(static_cast<const char*>(buf->base), buf->len));
  raft_free(buf->base);  // restore owns the buffer (RAFT_NOTES, defect 4)
  if (!s.ok()) {
    Log(LogLevel::kError, "cannot load the Raft snapshot",
        {{"raft_id", self->raft_id_}, {"error", s.message()}});
    return RAFT_CORRUPT;
  }
  return 0;
}

}  // namespace snapshot
