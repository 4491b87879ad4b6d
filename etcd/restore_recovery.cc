// ClusterRestore at start-up and in the background: finish what the records
// left unfinished; ask coordinators about restores left undecided.
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/io.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/thread_name.h"
#include "etcd/cluster_restore.h"

namespace snapshot {

ClusterRestore::ClusterRestore(ClusterRestoreConfig config, EtcdClient* local)
    : config_(std::move(config)), records_(config_.state_dir), local_(local) {}

absl::StatusOr<std::unique_ptr<ClusterRestore>> ClusterRestore::Start(
    ClusterRestoreConfig config, EtcdClient* local) {
  if (::mkdir(config.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "cannot create", config.state_dir);
  }
  if (!config.agents.count(config.command.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--etcd-agents must list this member (", config.command.name, ")"));
  }
  if (!config.connect) {
    return absl::InvalidArgumentError("a cluster restore needs a way to reach the other agents");
  }
  std::unique_ptr<ClusterRestore> cr(new ClusterRestore(std::move(config), local));
  // Records that keep etcd stopped until the decision is known.
  bool hold = false;
  for (const std::string& id : cr->records_.Participating()) {
    absl::StatusOr<RestoreRecord> r = cr->records_.Load(id);
    if (r.ok() && r->phase == RestorePhase::kStopped) hold = true;
  }
  cr->SweepLeftovers();
  cr->supervisor_ = std::make_unique<Supervisor>(cr->config_.command, !hold);
  cr->recovery_ = std::thread([p = cr.get()] { p->Recover(); });
  return cr;
}

void ClusterRestore::Stop() {
  std::lock_guard<std::mutex> l(mu_);
  stopping_ = true;
  for (Participant* p : active_) p->Cancel();
}

ClusterRestore::~ClusterRestore() {
  Stop();
  if (recovery_.joinable()) recovery_.join();
  supervisor_.reset();
}

absl::Status ClusterRestore::Resolve(const RestoreRecord& r) {
  RestoreDecision decision = RestoreDecision::kUnknown;
  if (r.coordinator == member()) {
    decision = Decision(r.id);
  } else if (config_.agents.count(r.coordinator)) {
    SA_RETURN_IF_ERROR(OnPeer(r.coordinator, [&](Participant* peer) -> absl::Status {
      SA_ASSIGN_OR_RETURN(decision, peer->AskDecision(r.id, absl::Now() + absl::Seconds(5)));
      return absl::OkStatus();
    }));
  }
  switch (decision) {
    case RestoreDecision::kCommit:
      return Commit(r.id, absl::Now() + absl::Minutes(5));
    case RestoreDecision::kPending:
      return absl::UnavailableError("the coordinator has not decided yet");
    case RestoreDecision::kUnknown:
      break;
  }
  // No decision recorded: it was never committed.
  return Abort(r.id);
}

void ClusterRestore::SweepLeftovers() {
  namespace fs = std::filesystem;
  const std::vector<std::string> ids = records_.Participating();
  const std::set<std::string> recorded(ids.begin(), ids.end());
  int files = 0;
  uintmax_t bytes = 0;
  std::error_code ec;
  auto remove = [&](const fs::path& p) {
    uintmax_t size = 0;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p, ec)) {
        if (e.is_regular_file(ec)) size += e.file_size(ec);
      }
    } else {
      size = fs::file_size(p, ec);
    }
    if (fs::remove_all(p, ec) > 0 && !ec) {
      ++files;
      bytes += size;
    }
  };
  for (const auto& e : fs::directory_iterator(config_.state_dir, ec)) {
    const std::string name = e.path().filename().string();
    for (absl::string_view suffix : {".db", ".etcdctl.log"}) {
      if (absl::EndsWith(name, suffix) &&
          !recorded.count(name.substr(0, name.size() - suffix.size()))) {
        remove(e.path());
      }
    }
  }
  const fs::path data(config_.command.data_dir);
  const std::string prefix = data.filename().string() + ".restore-";
  for (const auto& e :
       fs::directory_iterator(data.has_parent_path() ? data.parent_path() : fs::path("."), ec)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, prefix) && !recorded.count(name.substr(prefix.size()))) {
      remove(e.path());
    }
  }
  if (files > 0) {
    Log(LogLevel::kWarning, "removed what unfinished etcd restore prepares left behind",
        {{"dir", config_.state_dir}, {"files", files}, {"bytes_freed", bytes}});
  }
}

void ClusterRestore::Recover() {
  SetThreadName("sa-etcd-recover");
  // A commit that was under way: finish it (etcd then runs the restored
  // data; the coordinator finalizes).
  std::vector<RestoreRecord> undecided;
  for (const std::string& id : records_.Participating()) {
    absl::StatusOr<RestoreRecord> r = records_.Load(id);
    if (!r.ok()) continue;
    Log(LogLevel::kWarning, "unfinished etcd restore found at start-up",
        {{"restore_id", id}, {"phase", PhaseName(r->phase)}, {"coordinator", r->coordinator}});
    if (r->phase == RestorePhase::kCommitting || r->phase == RestorePhase::kCommitted) {
      absl::Status s = Commit(id, absl::Now() + absl::Minutes(5));
      if (!s.ok()) {
        Log(LogLevel::kError, "cannot finish the restore's commit",
            {{"restore_id", id}, {"error", s.message()}});
      }
    } else {
      std::lock_guard<std::mutex> l(mu_);
      busy_ = id;
      undecided.push_back(*r);
    }
  }
  // A coordinator that had decided: drive the commit to the end again.
  std::thread redrive([this, decisions = records_.Decided()] {
    for (const std::string& id : decisions) {
      if (stopping_) return;
      absl::StatusOr<RestoreDecisionRecord> d = records_.LoadDecision(id);
      if (!d.ok()) continue;
      SnapshotMeta meta;
      meta.etcd.revision = d->revision;
      Log(LogLevel::kWarning, "finishing a decided etcd restore", {{"restore_id", id}});
      absl::StatusOr<RestoreResult> r =
          FinishCommitted(id, d->members, nullptr, &meta, absl::Now() + absl::Minutes(30));
      if (!r.ok()) {
        Log(LogLevel::kError, "cannot finish the decided restore",
            {{"restore_id", id}, {"error", r.status().message()}});
      }
    }
  });
  // Prepared or stopped, at start-up and whenever a restore stays there
  // longer than config_.resolve_after without word from its coordinator:
  // ask the coordinator. A stopped etcd stays stopped until it answers.
  int round = 0;
  while (!stopping_) {
    for (const RestoreRecord& r : undecided) {
      absl::Status s = Resolve(r);
      if (!s.ok() && round % 30 == 0) {
        Log(LogLevel::kWarning,
            r.phase == RestorePhase::kStopped
                ? "etcd stays stopped until the restore's coordinator says what was decided"
                : "waiting for the restore's coordinator",
            {{"restore_id", r.id}, {"coordinator", r.coordinator}, {"error", s.message()}});
      }
    }
    ++round;
    for (int i = 0; i < 10 && !stopping_; ++i) absl::SleepFor(absl::Milliseconds(100));
    undecided.clear();
    for (const std::string& id : records_.Participating()) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (coordinating_ == id) continue;  // ours, in progress
      }
      struct stat st;
      if (stat(records_.Path(id, "state").c_str(), &st) != 0 ||
          absl::Now() - absl::FromTimeT(st.st_mtime) < config_.resolve_after) {
        continue;
      }
      absl::StatusOr<RestoreRecord> r = records_.Load(id);
      if (r.ok() && (r->phase == RestorePhase::kPrepared || r->phase == RestorePhase::kStopped)) {
        undecided.push_back(*r);
      }
    }
  }
  redrive.join();
}

}  // namespace snapshot
