#include "core/restore_if_empty.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/remote_sync.h"
#include "core/restore_request.h"

namespace snapshot {

const char* ResultName(RestoreIfEmptyResult r) {
  switch (r) {
    case RestoreIfEmptyResult::kRestored:
      return "restored";
    case RestoreIfEmptyResult::kNotEmpty:
      return "not_empty";
    case RestoreIfEmptyResult::kNoSnapshot:
      return "no_snapshot";
    case RestoreIfEmptyResult::kNotLeader:
      return "not_leader";
  }
  return "?";
}

namespace {

// One attempt of RestoreIfEmpty (below).
absl::StatusOr<RestoreIfEmptyResult> Attempt(RaftNode* node, Restorer* restorer,
                                             SnapshotJob* job, RemoteSync* remote,
                                             absl::Time deadline, const std::atomic<bool>* stop,
                                             std::string* restored_id) {
  // An election: the engine decides who leads; nothing here polls faster
  // than a human would notice.
  for (;;) {
    if (stop != nullptr && *stop) return absl::CancelledError("the agent is stopping");
    absl::StatusOr<NodeStatus> st = node->Status(std::min(deadline, absl::Now() + absl::Seconds(5)));
    if (st.ok() && st->role == Role::kLeader) break;
    if (st.ok() && st->leader_id != 0) return RestoreIfEmptyResult::kNotLeader;
    if (absl::Now() >= deadline) {
      return absl::UnavailableError("no leader was elected in time; the node was left as it is");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  SA_ASSIGN_OR_RETURN(bool empty, node->HoldsNoState(deadline));
  if (!empty) return RestoreIfEmptyResult::kNotEmpty;
  SA_ASSIGN_OR_RETURN(std::vector<RemoteEntry> listed, remote->List(absl::ZeroDuration()));
  const RemoteEntry* newest = nullptr;
  for (const RemoteEntry& r : listed) {  // newest first
    if (r.object.cluster == remote->cluster() && r.entry.meta.engine == node->engine()) {
      newest = &r;
      break;
    }
  }
  if (newest == nullptr) return RestoreIfEmptyResult::kNoSnapshot;
  *restored_id = newest->entry.id;
  SA_ASSIGN_OR_RETURN(std::unique_ptr<RestoreSpool> spool, restorer->Begin(deadline));
  // No safety snapshot: there is nothing to keep.
  RestoreRequest request(std::move(spool), job->catalog(), nullptr);
  SA_RETURN_IF_ERROR(request.Options("", newest->entry.id));
  SA_RETURN_IF_ERROR(request.Finish(deadline).status());
  return RestoreIfEmptyResult::kRestored;
}

}  // namespace

absl::StatusOr<RestoreIfEmptyResult> RestoreIfEmpty(RaftNode* node, Restorer* restorer,
                                                    SnapshotJob* job, absl::Time deadline,
                                                    const std::atomic<bool>* stop,
                                                    std::string* restored_id) {
  RemoteSync* remote = job->remote();
  if (remote == nullptr) {
    return absl::FailedPreconditionError("--restore-if-empty needs --remote");
  }
  // A brand-new cluster's agents start together: the leader's may try
  // before another member's agent listens (etcd: "the restore was prepared
  // nowhere: ... Connection refused; nothing changed"). A failed attempt
  // changes nothing, so an UNAVAILABLE one is tried again, every second,
  // until the deadline.
  for (;;) {
    absl::StatusOr<RestoreIfEmptyResult> r =
        Attempt(node, restorer, job, remote, deadline, stop, restored_id);
    if (r.ok() || r.status().code() != absl::StatusCode::kUnavailable ||
        absl::Now() + absl::Seconds(1) >= deadline) {
      return r;
    }
    for (int i = 0; i < 10; ++i) {
      if (stop != nullptr && *stop) return absl::CancelledError("the agent is stopping");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

}  // namespace snapshot
