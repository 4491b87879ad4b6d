// JobMetrics: what the agent's own job (core/snapshot_job.h) reports about
// the catalog and the schedule. The agent injects its Prometheus metrics
// (server/metrics.h); tests and tools use NoJobMetrics() or a fake.
//
// Threading: implementations must be thread-safe (the scheduler's thread and
// RPC threads report at once).
#ifndef SNAPSHOT_AGENT_CORE_JOB_METRICS_H_
#define SNAPSHOT_AGENT_CORE_JOB_METRICS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace snapshot {

class JobMetrics {
 public:
  virtual ~JobMetrics() = default;
  // A snapshot written into the catalog (scheduled, on demand, pre-restore).
  virtual void CatalogWrite(const std::string& origin, bool ok, absl::Duration d) = 0;
  // One run of the schedule: "success", "unchanged", "failure" or
  // "not_leader".
  virtual void ScheduleRun(const std::string& result) = 0;
  virtual void SetScheduleLastSuccess(absl::Time t) = 0;
  virtual void SetScheduleConsecutiveFailures(int n) = 0;
  virtual void SetCatalog(uint64_t snapshots, uint64_t bytes) = 0;
  // The remote store (core/remote_sync.h): one upload ("success" or
  // "failure") with its bytes and duration; this cluster's snapshots there;
  // the last successful upload; failed passes in a row; a retention delete.
  virtual void RemoteUpload(const std::string& result, uint64_t bytes, absl::Duration d) = 0;
  virtual void SetRemote(uint64_t snapshots, uint64_t bytes) = 0;
  virtual void SetRemoteLastSuccess(absl::Time t) = 0;
  virtual void SetRemoteConsecutiveFailures(int n) = 0;
  virtual void RemoteDeleted(bool ok) = 0;
  // One remote snapshot downloaded again and checked: "ok", "corrupt" (its
  // bytes do not match what was uploaded) or "error" (it could not be read).
  virtual void RemoteVerify(const std::string& result) = 0;
  // --restore-if-empty at start-up: "restored", "not_empty", "no_snapshot"
  // or "failure".
  virtual void RestoreIfEmpty(const std::string& result) = 0;
};

// Reports nothing.
JobMetrics* NoJobMetrics();

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_JOB_METRICS_H_
