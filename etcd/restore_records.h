// RestoreRecords: the durable records of the etcd cluster restore, in the
// agent's state directory — a participant's record of where it stands
// (ID.state) and the coordinator's decision (ID.decision) — written
// atomically and fsync'd before they are acted on (base/atomic_file.h), and
// the files a prepare writes beside them (ID.db, ID.etcdctl.log).
//
// Threading: thread-safe (every call is its own file operation). Errors:
// file errors as ErrnoStatus; a record that does not parse is DATA_LOSS.
#ifndef SNAPSHOT_AGENT_ETCD_RESTORE_RECORDS_H_
#define SNAPSHOT_AGENT_ETCD_RESTORE_RECORDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/env.h"
#include "etcd/restore_protocol.h"

namespace snapshot {

struct RestoreRecord {
  std::string id;
  RestorePhase phase = RestorePhase::kPrepared;
  std::string coordinator;
};

struct RestoreDecisionRecord {
  std::string id;
  std::vector<std::string> members;
  int64_t revision = 0;  // the snapshot's etcd revision (0: unknown)
};

class RestoreRecords {
 public:
  explicit RestoreRecords(std::string dir, Env* env = Env::Default())
      : dir_(std::move(dir)), env_(env) {}

  // DIR/ID.KIND ("state", "decision", "db", "etcdctl.log").
  std::string Path(const std::string& id, const char* kind) const;

  absl::Status Save(const RestoreRecord& r);
  absl::StatusOr<RestoreRecord> Load(const std::string& id);
  // Removes the record and the prepare's log.
  void Forget(const std::string& id);

  // Records the coordinator's decision to commit. OK once it is durable.
  // An error with `*decided` false: nothing was recorded, aborting is safe.
  // An error with `*decided` true: the record is in place (renamed) but its
  // directory could not be fsync'd, even after retries — the decision may
  // already have been read by a member asking for it, so it stands and must
  // never be aborted; the members finish it through recovery.
  absl::Status SaveDecision(const RestoreDecisionRecord& d, bool* decided);
  absl::StatusOr<RestoreDecisionRecord> LoadDecision(const std::string& id);
  bool HasDecision(const std::string& id) const;
  void RemoveDecision(const std::string& id);

  // The ids with a participant record, and with a decision.
  std::vector<std::string> Participating() const;
  std::vector<std::string> Decided() const;

 private:
  std::vector<std::string> WithSuffix(absl::string_view suffix) const;
  const std::string dir_;
  Env* const env_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ETCD_RESTORE_RECORDS_H_
