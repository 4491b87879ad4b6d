#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <exception>

#include "absl/strings/str_cat.h"

namespace snapshot {
namespace {

prometheus::Histogram::BucketBoundaries DurationBuckets() {
  return {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
}

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& rpcs =
      prometheus::BuildCounter()
          .Name("snapshot_agent_rpcs_total")
          .Help("RPCs answered, by method and status code")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& bytes =
      prometheus::BuildCounter()
          .Name("snapshot_agent_rpc_bytes_total")
          .Help("Archive and payload bytes moved by RPCs, by method and direction (in, out)")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& durations =
      prometheus::BuildHistogram()
          .Name("snapshot_agent_operation_duration_seconds")
          .Help("Duration of take, verify, restore and catalog operations")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& catalog_writes =
      prometheus::BuildCounter()
          .Name("snapshot_agent_catalog_writes_total")
          .Help("Snapshots written into the catalog, by origin and result")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& schedule_runs =
      prometheus::BuildCounter()
          .Name("snapshot_agent_schedule_runs_total")
          .Help("Runs of the snapshot schedule, by result")
          .Register(*registry);
  prometheus::Gauge& last_success =
      prometheus::BuildGauge()
          .Name("snapshot_agent_schedule_last_success_timestamp_seconds")
          .Help("Unix time of the last successful scheduled snapshot (0: none yet)")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& failures =
      prometheus::BuildGauge()
          .Name("snapshot_agent_schedule_consecutive_failures")
          .Help("Scheduled snapshots failed in a row")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& catalog_snapshots =
      prometheus::BuildGauge()
          .Name("snapshot_agent_catalog_snapshots")
          .Help("Snapshots in the catalog")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& catalog_bytes =
      prometheus::BuildGauge()
          .Name("snapshot_agent_catalog_bytes")
          .Help("Bytes of the archives in the catalog")
          .Register(*registry)
          .Add({});
  prometheus::Family<prometheus::Counter>& remote_uploads =
      prometheus::BuildCounter()
          .Name("snapshot_agent_remote_uploads_total")
          .Help("Uploads of snapshots to the remote store, by result")
          .Register(*registry);
  prometheus::Counter& remote_upload_bytes =
      prometheus::BuildCounter()
          .Name("snapshot_agent_remote_upload_bytes_total")
          .Help("Bytes of snapshots uploaded to the remote store")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& remote_last_success =
      prometheus::BuildGauge()
          .Name("snapshot_agent_remote_last_success_timestamp_seconds")
          .Help("Unix time of the last successful upload (0: none yet)")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& remote_failures =
      prometheus::BuildGauge()
          .Name("snapshot_agent_remote_consecutive_failures")
          .Help("Passes over the remote store failed in a row")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& remote_snapshots =
      prometheus::BuildGauge()
          .Name("snapshot_agent_remote_snapshots")
          .Help("This cluster's snapshots in the remote store")
          .Register(*registry)
          .Add({});
  prometheus::Gauge& remote_bytes =
      prometheus::BuildGauge()
          .Name("snapshot_agent_remote_bytes")
          .Help("Bytes of this cluster's snapshots in the remote store")
          .Register(*registry)
          .Add({});
  prometheus::Family<prometheus::Counter>& remote_deletes =
      prometheus::BuildCounter()
          .Name("snapshot_agent_remote_retention_deletes_total")
          .Help("Remote snapshots deleted by retention, by result")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& remote_verifies =
      prometheus::BuildCounter()
          .Name("snapshot_agent_remote_verifications_total")
          .Help("Remote snapshots downloaded again and verified, by result")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& restore_if_empty =
      prometheus::BuildCounter()
          .Name("snapshot_agent_restore_if_empty_total")
          .Help("Start-up restores of an empty node from the remote store, by result")
          .Register(*registry);
  prometheus::Counter& restores =
      prometheus::BuildCounter()
          .Name("snapshot_agent_restores_applied_total")
          .Help("Restores applied to the cluster through this agent")
          .Register(*registry)
          .Add({});
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}

Metrics& Metrics::Get() {
  static Metrics* m = new Metrics();
  return *m;
}

std::shared_ptr<prometheus::Registry> Metrics::registry() { return impl_->registry; }

void Metrics::Rpc(const MethodInfo& method, const std::string& code, uint64_t bytes,
                  absl::Duration d) {
  impl_->rpcs.Add({{"method", method.name}, {"code", code}}).Increment();
  if (bytes > 0) {
    impl_->bytes
        .Add({{"method", method.name},
              {"direction", method.bytes == Direction::kIn ? "in" : "out"}})
        .Increment(static_cast<double>(bytes));
  }
  if (method.operation != nullptr) {
    impl_->durations.Add({{"operation", method.operation}}, DurationBuckets())
        .Observe(absl::ToDoubleSeconds(d));
  }
}

void Metrics::CatalogWrite(const std::string& origin, bool ok, absl::Duration d) {
  impl_->catalog_writes.Add({{"origin", origin}, {"result", ok ? "success" : "failure"}})
      .Increment();
  if (ok) {
    impl_->durations.Add({{"operation", "catalog_write"}}, DurationBuckets())
        .Observe(absl::ToDoubleSeconds(d));
  }
}

void Metrics::ScheduleRun(const std::string& result) {
  impl_->schedule_runs.Add({{"result", result}}).Increment();
}

void Metrics::SetScheduleLastSuccess(absl::Time t) {
  impl_->last_success.Set(absl::ToDoubleSeconds(t - absl::UnixEpoch()));
}

void Metrics::SetScheduleConsecutiveFailures(int n) { impl_->failures.Set(n); }

void Metrics::SetCatalog(uint64_t snapshots, uint64_t bytes) {
  impl_->catalog_snapshots.Set(static_cast<double>(snapshots));
  impl_->catalog_bytes.Set(static_cast<double>(bytes));
}

void Metrics::RemoteUpload(const std::string& result, uint64_t bytes, absl::Duration d) {
  impl_->remote_uploads.Add({{"result", result}}).Increment();
  impl_->remote_upload_bytes.Increment(static_cast<double>(bytes));
  if (result == "success") {
    impl_->durations.Add({{"operation", "remote_upload"}}, DurationBuckets())
        .Observe(absl::ToDoubleSeconds(d));
  }
}

void Metrics::SetRemote(uint64_t snapshots, uint64_t bytes) {
  impl_->remote_snapshots.Set(static_cast<double>(snapshots));
  impl_->remote_bytes.Set(static_cast<double>(bytes));
}

void Metrics::SetRemoteLastSuccess(absl::Time t) {
  impl_->remote_last_success.Set(absl::ToDoubleSeconds(t - absl::UnixEpoch()));
}

void Metrics::SetRemoteConsecutiveFailures(int n) { impl_->remote_failures.Set(n); }

void Metrics::RemoteDeleted(bool ok) {
  impl_->remote_deletes.Add({{"result", ok ? "success" : "failure"}}).Increment();
}

void Metrics::RemoteVerify(const std::string& result) {
  impl_->remote_verifies.Add({{"result", result}}).Increment();
}

void Metrics::RestoreIfEmpty(const std::string& result) {
  impl_->restore_if_empty.Add({{"result", result}}).Increment();
}

void Metrics::RestoreApplied() { impl_->restores.Increment(); }

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartMetricsServer(
    const std::string& address) {
  try {
    auto e = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
    e->RegisterCollectable(Metrics::Get().registry());
    return e;
  } catch (const std::exception& ex) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot serve metrics on --metrics-listen ", address, ": ", ex.what(),
        " (address in use, or not an address of this machine)"));
  }
}

}  // namespace snapshot
