// Checks of state.bin that an engine's state format allows without the
// engine itself, run while an archive is verified (VerifySnapshot, the
// restore spool) on any agent, whatever engine it runs, and by the etcd
// engine on what it is asked to restore.
//
//   etcd  state.bin is what `etcdctl snapshot save` writes: the bbolt
//         database followed by the 32-byte SHA-256 of the database. The hash
//         must match (DATA_LOSS otherwise).
//
// Archives of other engines, or of other producers, need no extra check.
//
// Threading: one instance per thread. Memory: 32 bytes of look-behind.
#ifndef SNAPSHOT_AGENT_ENGINE_STATE_CHECK_H_
#define SNAPSHOT_AGENT_ENGINE_STATE_CHECK_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "base/io.h"
#include "base/sha256.h"
#include "base/snapshot_meta.h"

namespace snapshot {

// A ByteSink that sees the state bytes as they stream past (passing them on
// to `next`, which may be null), and says at the end whether they hold.
class StateCheck : public ByteSink {
 public:
  // The check for `meta`'s engine; one that accepts anything otherwise.
  static std::unique_ptr<StateCheck> For(const SnapshotMeta& meta,
                                         ByteSink* next);
  virtual absl::Status Finish() = 0;
};


}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ENGINE_STATE_CHECK_H_
