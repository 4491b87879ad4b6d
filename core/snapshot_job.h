// The agent's own job (docs/operations.md, "Scheduled backups"): the
// catalog of stored snapshots, the schedule that fills it, retention, and
// the safety snapshot taken before every restore.
//
// Schedule: every `interval` (plus up to 10% random jitter), the agent
// whose node is the leader takes a snapshot into its catalog, so a cluster
// produces one snapshot per interval and the job moves with leadership (no
// lock service: a node that becomes leader takes one at once when its own
// last one is older than the interval). Followers only check. A snapshot
// whose state is byte-identical to the catalog's newest one is dropped
// ("unchanged": nothing happened since); every stored one is followed by
// retention. Each attempt has a deadline. After `max_failures` failed
// attempts in a row the job reports itself unhealthy (the health service
// "snapshot.v1.Schedule" says NOT_SERVING; the API itself stays SERVING)
// until an attempt succeeds.
//
// Threading: thread-safe; one scheduler thread of its own. Ownership: the
// node and the metrics are borrowed and must outlive the job.
#ifndef SNAPSHOT_AGENT_CORE_SNAPSHOT_JOB_H_
#define SNAPSHOT_AGENT_CORE_SNAPSHOT_JOB_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/catalog.h"
#include "core/failure_streak.h"
#include "core/job_metrics.h"
#include "core/remote_sync.h"
#include "core/retention.h"
#include "core/snapshot_ops.h"

namespace snapshot {

// The health service name of the schedule.
inline constexpr char kScheduleHealthService[] = "snapshot.v1.Schedule";

struct JobOptions {
  std::string snapshot_dir;
  absl::Duration interval = absl::ZeroDuration();  // 0: no schedule
  absl::Duration attempt_timeout = absl::Minutes(30);
  int max_failures = 3;
  RetentionPolicy retention;
  // Store the state before every restore (origin pre-restore).
  bool safety_snapshot = true;
  // How archives are written (level, threads, the agent's limits).
  TakeOptions take;
  // Where the catalog and the schedule report (never null).
  JobMetrics* metrics = NoJobMetrics();
  // The catalog's files encrypted at rest (--encrypt-local).
  CatalogEncryption encryption;
};

// The remote store, when there is one (core/remote_sync.h).
struct JobRemote {
  std::unique_ptr<RemoteStore> store;  // null: no remote
  RemoteOptions options;
  // Health of kRemoteHealthService, as for the schedule.
  std::function<void(bool)> on_health;
};

class SnapshotJob {
 public:
  // Opens the catalog (core/catalog.h) and starts the schedule. `on_health`
  // is called (from the scheduler's thread, or this one) with the
  // schedule's health whenever it changes, and once at start (healthy).
  // With a remote, every stored snapshot is uploaded (by the leader's
  // agent), and a snapshot asked for by id that only the bucket holds is
  // fetched into the catalog first.
  static absl::StatusOr<std::unique_ptr<SnapshotJob>> Start(
      RaftNode* node, JobOptions options, std::function<void(bool)> on_health,
      JobRemote remote = {});
  ~SnapshotJob();

  // Stops the schedule; an attempt in progress is cancelled. Idempotent.
  void Stop();

  Catalog* catalog() { return catalog_.get(); }
  // Null without a remote.
  RemoteSync* remote() { return remote_.get(); }
  bool safety_snapshot() const { return options_.safety_snapshot; }

  // Takes a snapshot into the catalog now, then applies retention.
  absl::StatusOr<CatalogEntry> Create(SnapshotOrigin origin, absl::Time deadline);

  // Deletes a stored snapshot (and updates the metrics).
  absl::Status Delete(const std::string& id);

 private:
  SnapshotJob(RaftNode* node, JobOptions options, std::unique_ptr<Catalog> catalog,
              std::function<void(bool)> on_health);
  void Run();
  bool IsLeader();
  void Attempt();
  void UpdateCatalogMetrics();
  void ApplyRetention();  // and logs what it deleted
  absl::Duration Jitter();

  RaftNode* node_;
  const JobOptions options_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<RemoteSync> remote_;
  std::function<void(bool)> on_health_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  FailureStreak streak_;   // scheduler thread only
  std::thread thread_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_SNAPSHOT_JOB_H_
