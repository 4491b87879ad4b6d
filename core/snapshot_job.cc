#include "core/snapshot_job.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/thread_name.h"

namespace snapshot {

JobMetrics* NoJobMetrics() {
  class None : public JobMetrics {
   public:
    void CatalogWrite(const std::string&, bool, absl::Duration) override {}
    void ScheduleRun(const std::string&) override {}
    void SetScheduleLastSuccess(absl::Time) override {}
    void SetScheduleConsecutiveFailures(int) override {}
    void SetCatalog(uint64_t, uint64_t) override {}
    void RemoteUpload(const std::string&, uint64_t, absl::Duration) override {}
    void SetRemote(uint64_t, uint64_t) override {}
    void SetRemoteLastSuccess(absl::Time) override {}
    void SetRemoteConsecutiveFailures(int) override {}
    void RemoteDeleted(bool) override {}
    void RemoteVerify(const std::string&) override {}
    void RestoreIfEmpty(const std::string&) override {}
  };
  static None* none = new None;
  return none;
}

absl::StatusOr<std::unique_ptr<SnapshotJob>> SnapshotJob::Start(
    RaftNode* node, JobOptions options, std::function<void(bool)> on_health, JobRemote remote) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Catalog> catalog, Catalog::Open(options.snapshot_dir, options.encryption));
  std::unique_ptr<SnapshotJob> job(
      new SnapshotJob(node, std::move(options), std::move(catalog), std::move(on_health)));
  if (remote.store != nullptr) {
    remote.options.metrics = job->options_.metrics;
    SnapshotJob* j = job.get();
    SA_ASSIGN_OR_RETURN(job->remote_,
                        RemoteSync::Start(std::move(remote.store), std::move(remote.options),
                                          job->catalog_.get(), [j] { return j->IsLeader(); },
                                          std::move(remote.on_health)));
    RemoteSync* r = job->remote_.get();
    job->catalog_->SetFallback([r](const std::string& id) { return r->Import(id); });
  }
  job->UpdateCatalogMetrics();
  job->options_.metrics->SetScheduleConsecutiveFailures(0);
  job->on_health_(true);
  if (job->options_.interval > absl::ZeroDuration()) {
    job->thread_ = std::thread([j = job.get()] { j->Run(); });
  }
  return job;
}

SnapshotJob::SnapshotJob(RaftNode* node, JobOptions options, std::unique_ptr<Catalog> catalog,
                         std::function<void(bool)> on_health)
    : node_(node),
      options_(std::move(options)),
      catalog_(std::move(catalog)),
      on_health_(std::move(on_health)),
      streak_("the snapshot schedule", options_.max_failures, on_health_) {}

SnapshotJob::~SnapshotJob() { Stop(); }

void SnapshotJob::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (remote_) remote_->Stop();
}

void SnapshotJob::UpdateCatalogMetrics() {
  options_.metrics->SetCatalog(catalog_->List().size(), catalog_->TotalBytes());
}

absl::Duration SnapshotJob::Jitter() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return options_.interval * (std::uniform_real_distribution<double>(0, 0.1)(rng));
}

absl::StatusOr<CatalogEntry> SnapshotJob::Create(SnapshotOrigin origin, absl::Time deadline) {
  const absl::Time start = absl::Now();
  TakeOptions take = options_.take;
  ReadBack read_back = ReadBack::kVerify;
  if (origin == SnapshotOrigin::kPreRestore) {
    // The safety snapshot holds up a restore's commit: fast mode (archives
    // within a few percent of level 6's size, several times faster), and
    // the read-back only re-hashes what the disk holds.
    take.compression = Compression::Fast();
    // It runs while the old and the staged state are both in memory:
    // 1 MiB blocks instead of 4 (a replacing restore of 128 MiB of spread
    // records peaked at 412-471 MiB instead of 483-489, as fast).
    take.block_bytes = 1 << 20;
    read_back = ReadBack::kChecksum;
  }
  absl::StatusOr<CatalogEntry> e =
      catalog_->Create(node_, take, origin, deadline, &stop_, read_back);
  options_.metrics->CatalogWrite(OriginName(origin), e.ok(), absl::Now() - start);
  if (e.ok()) {
    ApplyRetention();
    if (remote_) remote_->Kick();
  }
  UpdateCatalogMetrics();
  return e;
}

void SnapshotJob::ApplyRetention() {
  for (const std::string& id : catalog_->ApplyRetention(options_.retention)) {
    Log(LogLevel::kInfo, "retention deleted a snapshot", {{"id", id}});
  }
}

absl::Status SnapshotJob::Delete(const std::string& id) {
  absl::Status s = catalog_->Delete(id);
  UpdateCatalogMetrics();
  return s;
}

bool SnapshotJob::IsLeader() {
  // The node's own role, not CheckLeader: engines such as etcd serve
  // snapshots on every member, but one member's agent runs the schedule.
  absl::StatusOr<NodeStatus> st = node_->Status(absl::Now() + absl::Seconds(10));
  return st.ok() && st->role == Role::kLeader;
}

void SnapshotJob::Attempt() {
  const absl::Time start = absl::Now();
  std::vector<CatalogEntry> before = catalog_->List();
  absl::StatusOr<CatalogEntry> e = catalog_->Create(
      node_, options_.take, SnapshotOrigin::kScheduled, start + options_.attempt_timeout, &stop_);
  if (stop_) return;
  if (!e.ok() && !IsLeader()) {
    // Leadership moved between the check and the capture: not a failure.
    options_.metrics->ScheduleRun("not_leader");
    return;
  }
  options_.metrics->CatalogWrite(OriginName(SnapshotOrigin::kScheduled), e.ok(),
                              absl::Now() - start);
  const char* result = "failure";
  if (e.ok() && !before.empty() && before.front().state_sha256 == e->state_sha256) {
    // Nothing changed since the newest stored snapshot: keep that one.
    (void)catalog_->Delete(e->id);
    result = "unchanged";
  } else if (e.ok()) {
    result = "success";
    Log(LogLevel::kInfo, "scheduled snapshot stored",
        {{"id", e->id}, {"index", e->meta.index}, {"archive_size", e->archive_size}});
    ApplyRetention();
    if (remote_) remote_->Kick();
  }
  UpdateCatalogMetrics();
  const int failures = streak_.Record(e.ok());
  if (e.ok()) {
    options_.metrics->SetScheduleLastSuccess(absl::Now());
  } else {
    Log(LogLevel::kWarning, "scheduled snapshot failed",
        {{"error", e.status().message()},
         {"code", absl::StatusCodeToString(e.status().code())},
         {"consecutive_failures", failures}});
  }
  options_.metrics->ScheduleRun(result);
  options_.metrics->SetScheduleConsecutiveFailures(failures);
}

void SnapshotJob::Run() {
  SetThreadName("sa-snapshots");
  // The last scheduled attempt: from the catalog at start, so that a
  // restart does not take one at once when the last is recent.
  absl::Time last = absl::InfinitePast();
  for (const CatalogEntry& e : catalog_->List()) {
    if (e.origin == SnapshotOrigin::kScheduled) {
      last = e.created;
      break;
    }
  }
  absl::Duration jitter = Jitter();
  // While not the leader, the job checks this often whether it leads now.
  const absl::Duration tick = std::min(options_.interval / 4, absl::Seconds(1));
  absl::Time counted = absl::InfinitePast();  // the due time counted as not_leader
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    const absl::Time due = last + options_.interval + jitter;
    const absl::Time now = absl::Now();
    if (now < due) {
      cv_.wait_for(l, absl::ToChronoNanoseconds(std::min(due - now, tick)));
      continue;
    }
    l.unlock();
    const bool leader = IsLeader();
    if (leader) {
      Attempt();
      last = absl::Now();
      jitter = Jitter();
    } else if (counted != due) {
      options_.metrics->ScheduleRun("not_leader");
      counted = due;
    }
    l.lock();
    if (!leader && !stop_) cv_.wait_for(l, absl::ToChronoNanoseconds(tick));
  }
}

}  // namespace snapshot
