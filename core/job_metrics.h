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
};

// Reports nothing.
JobMetrics* NoJobMetrics();

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_JOB_METRICS_H_
