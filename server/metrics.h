// The agent's Prometheus metrics (docs/metrics.md lists every one: name,
// type, labels) and the plaintext HTTP endpoint that serves them
// (--metrics-listen; like the health port it carries no snapshot data, so it
// has no TLS: bind it to a private address).
//
// Metrics are process-wide (one agent per process; tests with several
// in-process agents share them). Threading: every method is thread-safe.
#ifndef SNAPSHOT_AGENT_SERVER_METRICS_H_
#define SNAPSHOT_AGENT_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/job_metrics.h"
#include "server/methods.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace snapshot {

class Metrics : public JobMetrics {
 public:
  static Metrics& Get();

  // One finished RPC: its method's entry, canonical code name, payload
  // bytes (in the method's direction), duration.
  void Rpc(const MethodInfo& method, const std::string& code, uint64_t bytes,
           absl::Duration d);
  // JobMetrics (core/job_metrics.h).
  void CatalogWrite(const std::string& origin, bool ok, absl::Duration d) override;
  void ScheduleRun(const std::string& result) override;
  void SetScheduleLastSuccess(absl::Time t) override;
  void SetScheduleConsecutiveFailures(int n) override;
  void SetCatalog(uint64_t snapshots, uint64_t bytes) override;
  void RemoteUpload(const std::string& result, uint64_t bytes, absl::Duration d) override;
  void SetRemote(uint64_t snapshots, uint64_t bytes) override;
  void SetRemoteLastSuccess(absl::Time t) override;
  void SetRemoteConsecutiveFailures(int n) override;
  void RemoteDeleted(bool ok) override;
  void RemoteVerify(const std::string& result) override;
  void RestoreIfEmpty(const std::string& result) override;
  void RestoreApplied();

  std::shared_ptr<prometheus::Registry> registry();

 private:
  Metrics();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Serves Metrics::Get() at http://ADDRESS/metrics. FAILED_PRECONDITION when
// the address cannot be bound.
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartMetricsServer(
    const std::string& address);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_METRICS_H_
