// RestoreRequest: the rules of one restore, whatever carries it (the
// RestoreSnapshot stream): what may come in which order, the expected
// checksum, the pin on a catalog snapshot, and the safety snapshot taken
// before anything is applied. The gRPC layer only turns messages into these
// calls and the outcome into a response.
//
//   RestoreRequest r(std::move(spool), catalog, safety);
//   r.Options(expected, "");          // first message only
//   r.Chunk(bytes); r.Chunk(bytes);   // the archive
//   r.ExpectedChecksum(expected);     // optional, last message only
//   SA_ASSIGN_OR_RETURN(RestoreOutcome o, r.Finish(deadline));
//
// The rules:
// - Options only as the first call; ExpectedChecksum only as the last one.
// - A restore of a catalog snapshot (Options with a catalog id) takes no
//   chunks: the stored archive is read (and verified like an upload: a file
//   may have rotted since it was stored). The snapshot is pinned (not
//   deleted by retention or DeleteSnapshot) until the request ends.
// - An expected checksum, given first, last or both, must match the
//   archive's; two that differ, or one that differs from the archive, is
//   DATA_LOSS: the bytes are not the ones the client meant; nothing applied.
// - The archive is verified completely, and its engine checked, before the
//   safety snapshot is started. It is taken (on a thread of its own) while
//   the new state is sent to the cluster and staged, and the restore waits
//   for it to be stored, durable and read back before the commit: the state
//   it holds is the one the commit replaces, short of writes made during the
//   restore itself. A safety snapshot that cannot be stored aborts the
//   restore (with the cause's code) before anything is applied.
//
// Threading: one thread at a time. Ownership: the spool is owned; `catalog`
// is borrowed (may be null: no catalog restores) and must outlive it.
#ifndef SNAPSHOT_AGENT_CORE_RESTORE_REQUEST_H_
#define SNAPSHOT_AGENT_CORE_RESTORE_REQUEST_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/catalog.h"
#include "core/snapshot_ops.h"

namespace snapshot {

struct RestoreOutcome {
  ArchiveInfo info;            // what was restored
  RestoreResult result;        // where it took effect
  std::string catalog_id;      // the catalog snapshot restored, if any
  std::string safety_id;       // the safety snapshot that undoes it, if any
};

// Stores a safety snapshot of the current state; returns its catalog id.
using SafetySnapshotFn = std::function<absl::StatusOr<std::string>(absl::Time deadline)>;

class RestoreRequest {
 public:
  // `safety` null: no safety snapshot.
  RestoreRequest(std::unique_ptr<RestoreSpool> spool, Catalog* catalog,
                 SafetySnapshotFn safety);

  absl::Status Options(const std::string& expected_checksum, const std::string& catalog_id);
  absl::Status Chunk(absl::string_view bytes);
  absl::Status ExpectedChecksum(const std::string& checksum);
  // Verifies, takes the safety snapshot, applies.
  absl::StatusOr<RestoreOutcome> Finish(absl::Time deadline);

 private:
  absl::Status Next(bool options);
  std::unique_ptr<RestoreSpool> spool_;
  Catalog* catalog_;
  SafetySnapshotFn safety_;
  std::unique_ptr<Catalog::Pin> stored_;
  std::string expected_;
  bool first_ = true;
  bool ended_ = false;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_RESTORE_REQUEST_H_
