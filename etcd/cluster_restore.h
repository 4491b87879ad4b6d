// ClusterRestore: restoring an etcd cluster from a snapshot, carried out by
// the agents of all its members (supervised mode: each agent runs its etcd,
// etcd/supervisor.h). etcd has no online restore; the correct procedure is to
// stop every member, build fresh data directories from the same snapshot
// with the same initial cluster, and start them all. This does it, as a
// two-phase commit whose protocol and crash cases docs/etcd-engine.md lays
// out:
//
//   1. prepare  every other member's agent receives the state — while the
//               coordinator still receives the upload (BeginForward), with
//               its SHA-256 last, once the upload has verified — and
//               verifies it again (the coordinator's own member links its
//               verified spool), then runs `etcdctl snapshot restore` into
//               DATA_DIR.restore-ID beside the live directory; etcd keeps
//               serving. Any failure: abort everywhere, nothing changed.
//   2. stop     every agent stops its etcd (which then stays stopped), the
//               leader's last. Any failure: abort everywhere (stopped members
//               start again on their old data), nothing changed.
//   3. decide   the coordinator records the decision durably. From here on
//               the restore happens: a crash only delays it.
//   4. commit   every agent renames DATA_DIR to DATA_DIR.pre-restore-ID and
//               DATA_DIR.restore-ID to DATA_DIR, and starts etcd.
//   5. check    the coordinator waits until every member serves the restored
//               revision under a leader, then finalizes: the pre-restore
//               directories are removed (kept with keep_pre_restore).
//
// Every participant step is recorded (fsync'd) in the agent's state
// directory before it is acted on, and is idempotent. At start-up an agent
// finishes what its records say: a member that was stopped asks the
// coordinator for the decision and keeps etcd stopped until it knows (a
// member must never start its old data while others run the restored one);
// no decision recorded means abort. A coordinator with a recorded decision
// drives its commit to the end again.
//
// The code, a file per concern: restore_protocol.h (the shared vocabulary and
// the Participant seam through which the coordinator reaches other members'
// agents; the agent supplies it), restore_records.h (the durable records),
// restore_participant.cc (a member's steps), restore_coordinator.cc (the
// two phases driven from here), restore_recovery.cc (start-up and the
// background resolution of restores left undecided).
//
// Threading: thread-safe. One restore at a time per agent (a second one, as
// coordinator or participant, is UNAVAILABLE).
#ifndef SNAPSHOT_AGENT_ETCD_CLUSTER_RESTORE_H_
#define SNAPSHOT_AGENT_ETCD_CLUSTER_RESTORE_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/node.h"
#include "etcd/etcd_client.h"
#include "etcd/restore_protocol.h"
#include "etcd/restore_records.h"
#include "etcd/supervisor.h"

namespace snapshot {

struct ClusterRestoreConfig {
  // Where this agent records restores in progress (in its data directory).
  std::string state_dir;
  // The supervised etcd: its command line (name, data dir, cluster).
  EtcdCommand command;
  // etcdctl (3.4: `etcdctl snapshot restore`).
  std::string etcdctl = "etcdctl";
  // Keep DATA_DIR.pre-restore-ID after a successful restore.
  bool keep_pre_restore = false;
  // Every member's agent, by etcd member name (this one included).
  std::map<std::string, std::string> agents;
  // Reaches another member's agent (the agent's transport).
  ParticipantFactory connect;
  // Largest state accepted by Prepare: the agent's (core/limits.h).
  uint64_t max_state_bytes = 0;
  // A member left prepared or stopped this long without word from the
  // coordinator asks it for the decision (and drops the restore when none
  // was recorded).
  absl::Duration resolve_after = absl::Seconds(60);
  // A member whose agent takes none of the state for this long while it is
  // forwarded (a stopped or partitioned agent) is dropped and the restore
  // fails (UNAVAILABLE, naming it), so that it cannot hold the upload, and
  // the threads receiving it, indefinitely. The agent sets half its
  // --idle-timeout: the member is named before the upload itself counts as
  // idle.
  absl::Duration stall_timeout = absl::Seconds(30);
};

class ClusterRestore {
 public:
  // Creates the state directory, finishes what its records left unfinished
  // (in the background where it must wait for the coordinator) and starts
  // the supervised etcd — unless a record says it must stay stopped until
  // the decision is known. `local` (borrowed) talks to this member's etcd.
  static absl::StatusOr<std::unique_ptr<ClusterRestore>> Start(
      ClusterRestoreConfig config, EtcdClient* local);
  ~ClusterRestore();
  // From now on, waits end and peer calls are cancelled (CANCELLED): what is
  // decided stays recorded, and the next start finishes it. For the end of
  // the agent's shutdown grace period; the destructor calls it too.
  // Thread-safe.
  void Stop();

  // OK when a restore may start here: etcd runs and no restore is in
  // progress (UNAVAILABLE otherwise).
  absl::Status CheckReady(absl::Time deadline);

  // The coordinator's start of a restore whose state is still being
  // received (engine/node.h's StateForward): checks as Run does, claims this
  // member for the restore, and sets up a prepare on every other member's
  // agent, to which the written bytes go as they come: each begun with the
  // first of them and fed through a queue of PipelineSink::kMaxQueued bytes,
  // on a thread of its own; a member that takes nothing for
  // config.stall_timeout is dropped. Errors as Run's prepare; the first
  // error of a member shows on a later Write.
  absl::StatusOr<std::unique_ptr<StateForward>> BeginForward(const SnapshotMeta& meta,
                                                             absl::Time deadline);

  // Coordinates a cluster-wide restore of the verified etcd state that
  // `open_state` yields (meta.size bytes: database + SHA-256), which
  // `forwarded` (from BeginForward, Verified; may be null) has also sent to
  // the other members already. Errors as engine/node.h's Restore: any
  // failure before the decision changes nothing; after it, ABORTED says
  // which members have not confirmed yet (their agents finish when
  // reachable). `before_commit` runs once every member has prepared, before
  // any member stops.
  absl::StatusOr<RestoreResult> Run(const SnapshotMeta& meta, const StateOpener& open_state,
                                    StateForward* forwarded, absl::Time deadline,
                                    const BeforeCommit& before_commit);

  // --- Participant steps (the EtcdRestoreService glue calls these) -------

  // The state bytes of a prepare (Write), then Finish with their hex
  // SHA-256 (restore_protocol.h): the bytes are checked against it, then
  // `etcdctl snapshot restore` builds the new data directory. Destroyed
  // without a successful Finish: everything it wrote is removed and the
  // member is free for another restore.
  class Prepare : public ByteSink {
   public:
    virtual absl::Status Finish(const std::string& state_sha256) = 0;
    // Instead of Write: takes the state from `path`, a file of exactly the
    // announced bytes already verified by this agent (the coordinator's own
    // spool), by a hard link rather than a copy; Finish then reads nothing
    // again. An error (another file system, say) changes nothing: the
    // caller writes the bytes instead.
    virtual absl::Status LinkFrom(const std::string& path) = 0;
  };
  absl::StatusOr<std::unique_ptr<Prepare>> BeginPrepare(const PrepareHeader& header);
  absl::Status Stop(const std::string& id);
  absl::Status Commit(const std::string& id, absl::Time deadline);
  absl::Status Abort(const std::string& id);
  absl::Status Finalize(const std::string& id);
  RestoreDecision Decision(const std::string& id);
  // One of the steps above, by name.
  absl::Status DoStep(RestoreStep step, const std::string& id, absl::Time deadline);

  // This member's etcd name.
  const std::string& member() const { return config_.command.name; }

 private:
  class PrepareImpl;
  class Forward;
  ClusterRestore(ClusterRestoreConfig config, EtcdClient* local);

  // The restore's id, members and prepares, as Run's checks find them.
  absl::StatusOr<std::unique_ptr<Forward>> StartForward(const SnapshotMeta& meta,
                                                        absl::Time deadline);
  // This member's prepare: the spool linked (or copied) from `open_state`.
  absl::Status PrepareOwn(Forward* f, const StateOpener& open_state);
  absl::Status StepOn(const std::string& member, RestoreStep step,
                      const std::string& id, absl::Time deadline);
  void AbortEverywhere(const std::string& id,
                       const std::vector<std::string>& members);
  // Stops every member's etcd (step 2), the leader last; the failures.
  std::vector<std::pair<std::string, absl::Status>> StopMembers(
      const std::string& id, const std::vector<std::string>& members,
      const etcdserverpb::MemberListResponse& ml);
  absl::Status WaitForRestoredCluster(
      const etcdserverpb::MemberListResponse& members,
      const SnapshotMeta& meta, absl::Time deadline);
  // Commit, check and finalize after the decision (also after a restart).
  absl::StatusOr<RestoreResult> FinishCommitted(
      const std::string& id, const std::vector<std::string>& members,
      const etcdserverpb::MemberListResponse* member_list,
      const SnapshotMeta* meta, absl::Time deadline);
  void Recover();
  // Removes what a prepare killed before it recorded anything left behind:
  // ID.db and ID.etcdctl.log in the state directory and DATA_DIR.restore-ID
  // beside etcd's data, for ids without a record (our patterns and our
  // directories only). Logged with the bytes freed.
  void SweepLeftovers();
  // Asks the coordinator what was decided about `r` and acts on it.
  absl::Status Resolve(const RestoreRecord& r);
  // Drops the record of `id` and frees the participant slot.
  void Forget(const std::string& id);
  // Connects to member `m`'s agent and runs `call` on it; the call is
  // cancelled when the agent stops (CANCELLED), so that no peer call holds
  // up a shutdown.
  absl::Status OnPeer(const std::string& m, const std::function<absl::Status(Participant*)>& call);
  // The same for calls that outlast one function (a Forward's prepares):
  // connects and registers the participant; Unregister when done with it.
  absl::StatusOr<std::unique_ptr<Participant>> Connect(const std::string& m);
  void Unregister(Participant* p);

  const ClusterRestoreConfig config_;
  RestoreRecords records_;
  EtcdClient* local_;
  std::unique_ptr<Supervisor> supervisor_;
  std::mutex mu_;
  std::string busy_;         // guarded by mu_: id of the restore in progress
  std::string coordinating_;  // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::set<Participant*> active_;  // guarded by mu_: peer calls in progress
  std::thread recovery_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ETCD_CLUSTER_RESTORE_H_
