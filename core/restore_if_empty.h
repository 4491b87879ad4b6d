// --restore-if-empty=latest (docs/remote.md, "Recovering from the bucket"):
// a brand-new cluster brings back the newest snapshot of its remote history
// before it is used. Only the leader's agent acts, only when the node holds
// no state at all (RaftNode::HoldsNoState: an etcd that was never written, an
// embedded store without a key, checked linearizably), and the archive is
// verified completely before anything is applied, as for every restore. A
// node with any data is never touched: an auto-restore that overwrote live
// data is a known incident elsewhere. A failed attempt changes nothing and
// leaves the node empty, so the next start tries again.
//
// Threading: blocking; call from a thread of its own (it waits for an
// election). Ownership: everything is borrowed.
#ifndef SNAPSHOT_AGENT_CORE_RESTORE_IF_EMPTY_H_
#define SNAPSHOT_AGENT_CORE_RESTORE_IF_EMPTY_H_

#include <atomic>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/snapshot_job.h"
#include "core/snapshot_ops.h"

namespace snapshot {

enum class RestoreIfEmptyResult { kRestored, kNotEmpty, kNoSnapshot, kNotLeader };
// "restored", "not_empty", "no_snapshot", "not_leader" (metrics' labels).
const char* ResultName(RestoreIfEmptyResult r);

// Waits (until `deadline`, or `*stop`) for the cluster to have a leader; on
// the leader's agent, restores the newest snapshot of this cluster in the
// remote store when the node holds no state. `restored_id` receives the
// snapshot's id. An attempt that fails UNAVAILABLE (another member's agent
// not listening yet, the remote unreachable) is tried again every second
// until `deadline`. Errors: UNAVAILABLE when no leader appears in time, or
// that error persists; the restore's own errors (DATA_LOSS, ...).
absl::StatusOr<RestoreIfEmptyResult> RestoreIfEmpty(RaftNode* node, Restorer* restorer,
                                                    SnapshotJob* job, absl::Time deadline,
                                                    const std::atomic<bool>* stop,
                                                    std::string* restored_id);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_RESTORE_IF_EMPTY_H_
