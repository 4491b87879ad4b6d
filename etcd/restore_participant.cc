// ClusterRestore, a member's side: receive a prepare (the state, verified
// again, then `etcdctl snapshot restore` beside the live data), stop, commit
// (swap the data directories), abort, finalize, and answer for a decision.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/failpoint.h"
#include "base/io.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/subprocess.h"
#include "engine/state_check.h"
#include "etcd/cluster_restore.h"

namespace snapshot {

namespace fs = std::filesystem;

namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Runs etcdctl with ETCDCTL_API=3, output to `log`. INTERNAL with the end of
// the output when it fails.
absl::Status RunEtcdctl(const std::vector<std::string>& args, const std::string& log) {
  SubprocessOptions o;
  o.argv = args;
  o.env = {"ETCDCTL_API=3"};
  o.output_path = log;
  absl::Status s = RunToCompletion(o);
  if (absl::IsFailedPrecondition(s)) {
    return absl::FailedPreconditionError(
        absl::StrCat(s.message(), " (is etcd-client installed? see --etcdctl)"));
  }
  return s;
}

}  // namespace

class ClusterRestore::PrepareImpl : public ClusterRestore::Prepare {
 public:
  PrepareImpl(ClusterRestore* owner, PrepareHeader header, FileSink db)
      : owner_(owner), header_(std::move(header)),
        db_path_(db.path()), db_(std::make_unique<FileSink>(std::move(db))) {
    SnapshotMeta etcd_meta;
    etcd_meta.engine = kEngineEtcd;
    check_ = StateCheck::For(etcd_meta, db_.get());
  }

  ~PrepareImpl() override {
    db_.reset();
    unlink(db_path_.c_str());
    if (!prepared_) owner_->Abort(header_.restore_id).IgnoreError();
  }

  absl::Status Write(absl::string_view chunk) override {
    if (received_ == 0) Failpoint("etcd-restore-receiving");
    received_ += chunk.size();
    if (received_ > header_.state_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "more state than the ", header_.state_size, " bytes announced"));
    }
    hash_.Update(chunk);
    return check_->Write(chunk);
  }

  absl::Status LinkFrom(const std::string& path) override {
    if (received_ != 0) return absl::FailedPreconditionError("bytes were written already");
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != header_.state_size) {
      return absl::FailedPreconditionError("not a file of the announced size");
    }
    // Linked beside, then renamed over the empty file BeginPrepare created
    // (a name ending in .db: a crash in between leaves what the next start
    // sweeps); any failure leaves that file in place for the copy.
    const std::string tmp = owner_->records_.Path(header_.restore_id, "link.db");
    if (link(path.c_str(), tmp.c_str()) != 0) return ErrnoStatus(errno, "link", path);
    if (rename(tmp.c_str(), db_path_.c_str()) != 0) {
      absl::Status s = ErrnoStatus(errno, "rename", tmp);
      unlink(tmp.c_str());
      return s;
    }
    linked_ = true;
    return absl::OkStatus();
  }

  absl::Status Finish(const std::string& state_sha256) override {
    if (linked_) {
      // Verified by this agent as it was received: the hash and the state
      // check would read the same bytes again.
      SA_RETURN_IF_ERROR(db_->Close());
      return Restore();
    }
    if (received_ != header_.state_size) {
      return absl::DataLossError(absl::StrCat(
          "the state ended after ", received_, " of ", header_.state_size, " bytes"));
    }
    if (state_sha256.empty() || HexLower(hash_.Finish()) != state_sha256) {
      return absl::DataLossError(
          "the state's SHA-256 differs from the one the coordinator sent");
    }
    SA_RETURN_IF_ERROR(check_->Finish());
    // Not fsync'd: only etcdctl reads it, and it is removed once the data
    // directory built from it is durable (etcdctl syncs what it writes, and
    // Restore the directory) — nothing is recorded before, so a crash in
    // between leaves only what the next start sweeps. Its pages never need
    // to reach the disk.
    SA_RETURN_IF_ERROR(db_->Close());
    return Restore();
  }

 private:
  // etcdctl snapshot restore of the database into the new data directory.
  // With --skip-hash-check: the database's own SHA-256 (the 32 bytes at its
  // end, which etcdctl strips either way) was checked by this agent on these
  // very bytes as they were written (the StateCheck here, or the upload's
  // verification for the linked spool); etcdctl 3.4 would read the whole
  // file again and hash it at a third of the speed (its Go predates SHA-NI):
  // 0.36 of 0.57 s on a 170 MB database.
  absl::Status Restore() {
    const EtcdCommand& c = owner_->config_.command;
    const std::string new_dir = c.data_dir + ".restore-" + header_.restore_id;
    std::error_code ec;
    fs::remove_all(new_dir, ec);
    std::vector<std::string> args = {
        owner_->config_.etcdctl, "snapshot", "restore", db_path_,
        "--name", c.name, "--data-dir", new_dir,
        "--initial-cluster", c.initial_cluster,
        "--initial-advertise-peer-urls", c.initial_advertise_peer_urls, "--skip-hash-check"};
    if (!c.initial_cluster_token.empty()) {
      args.push_back("--initial-cluster-token");
      args.push_back(c.initial_cluster_token);
    }
    absl::Status ran =
        RunEtcdctl(args, owner_->records_.Path(header_.restore_id, "etcdctl.log"));
    if (!ran.ok()) {
      fs::remove_all(new_dir, ec);
      return ran;
    }
    SA_RETURN_IF_ERROR(SyncDirectoryOf(new_dir));
    SA_RETURN_IF_ERROR(owner_->records_.Save(
        {header_.restore_id, RestorePhase::kPrepared, header_.coordinator}));
    prepared_ = true;
    Log(LogLevel::kInfo, "etcd restore prepared",
        {{"restore_id", header_.restore_id}, {"snapshot_id", header_.snapshot_id},
         {"new_dir", new_dir}});
    Failpoint("etcd-restore-prepared");
    return absl::OkStatus();
  }

  ClusterRestore* owner_;
  const PrepareHeader header_;
  const std::string db_path_;
  std::unique_ptr<FileSink> db_;
  std::unique_ptr<StateCheck> check_;
  Sha256 hash_;
  uint64_t received_ = 0;
  bool linked_ = false;  // the database is a link to a verified file
  bool prepared_ = false;
};

void ClusterRestore::Forget(const std::string& id) {
  records_.Forget(id);
  std::lock_guard<std::mutex> l(mu_);
  if (busy_ == id) busy_.clear();
}

absl::StatusOr<std::unique_ptr<ClusterRestore::Prepare>> ClusterRestore::BeginPrepare(
    const PrepareHeader& header) {
  const std::string& id = header.restore_id;
  if (header.protocol != kPrepareProtocol) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the coordinating agent (member ", header.coordinator, ") speaks prepare protocol ",
        header.protocol, ", this one ", kPrepareProtocol,
        ": the agents run different releases; run the same release on every member's agent, "
        "then restore"));
  }
  if (id.empty() || id.find('/') != std::string::npos || id.find('.') != std::string::npos) {
    return absl::InvalidArgumentError("a restore id is letters and digits");
  }
  if (header.state_size > config_.max_state_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the state is ", header.state_size, " bytes; this agent accepts at most ",
        config_.max_state_bytes, " (--max-state-bytes)"));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!busy_.empty() && busy_ != id) {
      return absl::UnavailableError(absl::StrCat(
          "member ", member(), " is busy with restore ", busy_, "; retry later"));
    }
    busy_ = id;
  }
  absl::StatusOr<FileSink> db = FileSink::Create(records_.Path(id, "db"), 0600, false);
  if (!db.ok()) {
    Forget(id);
    return db.status();
  }
  return std::unique_ptr<Prepare>(new PrepareImpl(this, header, std::move(*db)));
}

absl::Status ClusterRestore::Stop(const std::string& id) {
  SA_ASSIGN_OR_RETURN(RestoreRecord r, records_.Load(id));
  if (r.phase != RestorePhase::kPrepared && r.phase != RestorePhase::kStopped) {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore ", id, " is ", PhaseName(r.phase), " on member ", member()));
  }
  SA_RETURN_IF_ERROR(supervisor_->Stop(absl::Seconds(30)));
  r.phase = RestorePhase::kStopped;
  SA_RETURN_IF_ERROR(records_.Save(r));
  Log(LogLevel::kInfo, "etcd stopped for a restore", {{"restore_id", id}});
  Failpoint("etcd-restore-stopped");
  return absl::OkStatus();
}

absl::Status ClusterRestore::Commit(const std::string& id, absl::Time deadline) {
  SA_ASSIGN_OR_RETURN(RestoreRecord r, records_.Load(id));
  const std::string& data = config_.command.data_dir;
  const std::string new_dir = data + ".restore-" + id;
  const std::string pre_dir = data + ".pre-restore-" + id;
  if (r.phase == RestorePhase::kPrepared || r.phase == RestorePhase::kStopped) {
    SA_RETURN_IF_ERROR(supervisor_->Stop(absl::Seconds(30)));
    r.phase = RestorePhase::kCommitting;
    SA_RETURN_IF_ERROR(records_.Save(r));
  }
  if (r.phase == RestorePhase::kCommitting) {
    // Idempotent: a crash anywhere in here is finished by the next Commit.
    if (Exists(new_dir)) {
      if (Exists(data)) {
        if (Exists(pre_dir)) {
          return absl::InternalError(absl::StrCat(
              "both ", data, " and ", pre_dir, " exist beside ", new_dir,
              ": the restore cannot tell which is which; see docs/etcd-engine.md"));
        }
        if (rename(data.c_str(), pre_dir.c_str()) != 0) {
          return ErrnoStatus(errno, "cannot move the live data directory to", pre_dir);
        }
      }
      if (rename(new_dir.c_str(), data.c_str()) != 0) {
        return ErrnoStatus(errno, "cannot move the restored data directory to", data);
      }
      SA_RETURN_IF_ERROR(SyncDirectoryOf(data));
    } else if (!Exists(data)) {
      return absl::InternalError(absl::StrCat(
          "neither ", new_dir, " nor ", data, " exists: the restore cannot go on"));
    }
    Failpoint("etcd-restore-swapped");
    r.phase = RestorePhase::kCommitted;
    SA_RETURN_IF_ERROR(records_.Save(r));
    Log(LogLevel::kInfo, "etcd restore committed: starting etcd on the restored data",
        {{"restore_id", id}, {"previous_data", pre_dir}});
  }
  supervisor_->Resume();
  // Answer once this member's etcd serves again.
  absl::Status last;
  while (absl::Now() < deadline) {
    last = local_->Status(std::min(deadline, absl::Now() + absl::Seconds(2))).status();
    if (last.ok()) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "etcd on member ", member(), " did not answer after the restore: ", last.message()));
}

absl::Status ClusterRestore::Abort(const std::string& id) {
  absl::StatusOr<RestoreRecord> r = records_.Load(id);
  if (r.ok() && (r->phase == RestorePhase::kCommitting || r->phase == RestorePhase::kCommitted)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore ", id, " is already ", PhaseName(r->phase), " on member ", member()));
  }
  std::error_code ec;
  fs::remove_all(config_.command.data_dir + ".restore-" + id, ec);
  unlink(records_.Path(id, "db").c_str());
  Forget(id);
  if (r.ok()) supervisor_->Resume();  // runs again if it was stopped
  if (r.ok()) Log(LogLevel::kInfo, "etcd restore aborted", {{"restore_id", id}});
  return absl::OkStatus();
}

absl::Status ClusterRestore::Finalize(const std::string& id) {
  absl::StatusOr<RestoreRecord> r = records_.Load(id);
  if (!r.ok()) return absl::OkStatus();  // done already
  if (r->phase != RestorePhase::kCommitted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore ", id, " is ", PhaseName(r->phase), ", not committed, on member ", member()));
  }
  const std::string pre_dir = config_.command.data_dir + ".pre-restore-" + id;
  if (!config_.keep_pre_restore) {
    std::error_code ec;
    fs::remove_all(pre_dir, ec);
  }
  Forget(id);
  return absl::OkStatus();
}

RestoreDecision ClusterRestore::Decision(const std::string& id) {
  if (records_.HasDecision(id)) return RestoreDecision::kCommit;
  std::lock_guard<std::mutex> l(mu_);
  if (coordinating_ == id) return RestoreDecision::kPending;
  return RestoreDecision::kUnknown;
}

absl::Status ClusterRestore::DoStep(RestoreStep step, const std::string& id,
                                    absl::Time deadline) {
  switch (step) {
    case RestoreStep::kStop:
      return Stop(id);
    case RestoreStep::kCommit:
      return Commit(id, deadline);
    case RestoreStep::kAbort:
      return Abort(id);
    case RestoreStep::kFinalize:
      return Finalize(id);
  }
  return absl::InvalidArgumentError("unknown restore step");
}

}  // namespace snapshot
