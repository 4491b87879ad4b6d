#include "etcd/cluster_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/atomic_file.h"
#include "base/env.h"
#include "base/failpoint.h"
#include "base/grpc_credentials.h"
#include "base/io.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/subprocess.h"
#include "engine/state_check.h"

namespace snapshot {

namespace fs = std::filesystem;

struct ClusterRestore::Record {
  std::string id;
  // "prepared", "stopped", "committing", "committed".
  std::string phase;
  std::string coordinator;
};

namespace {

constexpr size_t kChunk = 1 << 20;

std::string RandomId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Runs argv with ETCDCTL_API=3, output to `log`. INTERNAL with the end of
// the output when it fails.
absl::Status RunTool(const std::vector<std::string>& args, const std::string& log) {
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

// Runs `fn` for every member at once; returns "member: error" for failures.
std::vector<std::pair<std::string, absl::Status>> ForEach(
    const std::vector<std::string>& members,
    const std::function<absl::Status(const std::string&)>& fn) {
  std::vector<absl::Status> results(members.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < members.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = fn(members[i]); });
  }
  for (auto& t : threads) t.join();
  std::vector<std::pair<std::string, absl::Status>> failed;
  for (size_t i = 0; i < members.size(); ++i) {
    if (!results[i].ok()) failed.emplace_back(members[i], results[i]);
  }
  return failed;
}

std::string Describe(const std::vector<std::pair<std::string, absl::Status>>& f) {
  std::vector<std::string> parts;
  for (const auto& [m, s] : f) parts.push_back(absl::StrCat(m, ": ", s.message()));
  return absl::StrJoin(parts, "; ");
}

}  // namespace

// --- Peers ------------------------------------------------------------------

// Another member's agent, over gRPC.
class ClusterRestore::Peer {
 public:
  static absl::StatusOr<std::unique_ptr<Peer>> Connect(const std::string& address,
                                                       const PeerOptions& o) {
    TlsClientFiles files;
    files.ca_file = o.ca_file;
    if (!o.ca_file.empty()) {  // peers speak TLS when given a CA
      files.cert_file = o.cert_file;
      files.key_file = o.key_file;
    }
    files.cert_flag = "--peer-cert";
    files.key_flag = "--peer-key";
    SA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds,
                        ChannelCredentialsFromFiles(files));
    auto peer = std::make_unique<Peer>();
    peer->address_ = address;
    peer->token_ = o.token;
    peer->stub_ = v1::EtcdRestoreService::NewStub(grpc::CreateChannel(address, creds));
    return peer;
  }

  void Prepare(grpc::ClientContext* ctx, absl::Time deadline) const {
    ctx->set_deadline(absl::ToChronoTime(deadline));
    // No waiting for an agent that is down: steps that must get through
    // (commit) are retried.
    if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  }

  absl::Status From(const grpc::Status& s) const {
    if (s.ok()) return absl::OkStatus();
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat("agent at ", address_, ": ", s.error_message()));
  }

  v1::EtcdRestoreService::Stub* stub() { return stub_.get(); }

 private:
  std::string address_;
  std::string token_;
  std::unique_ptr<v1::EtcdRestoreService::Stub> stub_;
};

// --- Prepare (participant) --------------------------------------------------

class ClusterRestore::PrepareImpl : public ClusterRestore::Prepare {
 public:
  PrepareImpl(ClusterRestore* owner, v1::EtcdPrepareHeader header, FileSink db)
      : owner_(owner), header_(std::move(header)),
        db_path_(db.path()), db_(std::make_unique<FileSink>(std::move(db))) {
    SnapshotMeta etcd_meta;
    etcd_meta.engine = kEngineEtcd;
    check_ = StateCheck::For(etcd_meta, db_.get());
  }

  ~PrepareImpl() override {
    db_.reset();
    unlink(db_path_.c_str());
    if (!prepared_) owner_->Abort(header_.restore_id()).IgnoreError();
  }

  absl::Status Write(absl::string_view chunk) override {
    received_ += chunk.size();
    if (received_ > header_.state_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "more state than the ", header_.state_size(), " bytes announced"));
    }
    hash_.Update(chunk);
    return check_->Write(chunk);
  }

  absl::Status Finish() override {
    if (received_ != header_.state_size()) {
      return absl::DataLossError(absl::StrCat(
          "the state ended after ", received_, " of ", header_.state_size(),
          " bytes"));
    }
    if (HexLower(hash_.Finish()) != header_.state_sha256()) {
      return absl::DataLossError(
          "the state's SHA-256 differs from the one the coordinator sent");
    }
    SA_RETURN_IF_ERROR(check_->Finish());
    SA_RETURN_IF_ERROR(db_->SyncAndClose());
    const EtcdCommand& c = owner_->config_.command;
    const std::string new_dir = c.data_dir + ".restore-" + header_.restore_id();
    std::error_code ec;
    fs::remove_all(new_dir, ec);
    std::vector<std::string> args = {
        owner_->config_.etcdctl, "snapshot", "restore", db_path_,
        "--name", c.name, "--data-dir", new_dir,
        "--initial-cluster", c.initial_cluster,
        "--initial-advertise-peer-urls", c.initial_advertise_peer_urls};
    if (!c.initial_cluster_token.empty()) {
      args.push_back("--initial-cluster-token");
      args.push_back(c.initial_cluster_token);
    }
    absl::Status ran = RunTool(
        args, owner_->RecordPath(header_.restore_id(), "etcdctl.log"));
    if (!ran.ok()) {
      fs::remove_all(new_dir, ec);
      return ran;
    }
    SA_RETURN_IF_ERROR(SyncDirectoryOf(new_dir));
    Record r{header_.restore_id(), "prepared", header_.coordinator()};
    SA_RETURN_IF_ERROR(owner_->Save(r));
    prepared_ = true;
    Log(LogLevel::kInfo, "etcd restore prepared",
        {{"restore_id", header_.restore_id()}, {"snapshot_id", header_.snapshot_id()},
         {"new_dir", new_dir}});
    Failpoint("etcd-restore-prepared");
    return absl::OkStatus();
  }

 private:
  ClusterRestore* owner_;
  const v1::EtcdPrepareHeader header_;
  const std::string db_path_;
  std::unique_ptr<FileSink> db_;
  std::unique_ptr<StateCheck> check_;
  Sha256 hash_;
  uint64_t received_ = 0;
  bool prepared_ = false;
};

// --- ClusterRestore ---------------------------------------------------------

ClusterRestore::ClusterRestore(ClusterRestoreConfig config, EtcdClient* local)
    : config_(std::move(config)), local_(local) {}

std::string ClusterRestore::RecordPath(const std::string& id, const char* kind) const {
  return absl::StrCat(config_.state_dir, "/", id, ".", kind);
}

absl::Status ClusterRestore::Save(const Record& r) {
  nlohmann::json j = {{"id", r.id}, {"phase", r.phase}, {"coordinator", r.coordinator}};
  return WriteFileAtomically(RecordPath(r.id, "state"), j.dump() + "\n");
}

absl::StatusOr<ClusterRestore::Record> ClusterRestore::Load(const std::string& id) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(RecordPath(id, "state")));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j["id"].is_string() ||
      !j["phase"].is_string() || !j["coordinator"].is_string()) {
    return absl::DataLossError(absl::StrCat("unreadable restore record ",
                                            RecordPath(id, "state")));
  }
  return Record{j["id"], j["phase"], j["coordinator"]};
}

void ClusterRestore::Forget(const std::string& id) {
  unlink(RecordPath(id, "state").c_str());
  unlink(RecordPath(id, "etcdctl.log").c_str());
  SyncDirectoryOf(RecordPath(id, "state")).IgnoreError();
  std::lock_guard<std::mutex> l(mu_);
  if (busy_ == id) busy_.clear();
}

absl::StatusOr<std::unique_ptr<ClusterRestore::Prepare>> ClusterRestore::BeginPrepare(
    const v1::EtcdPrepareHeader& header) {
  const std::string& id = header.restore_id();
  if (id.empty() || id.find('/') != std::string::npos || id.find('.') != std::string::npos) {
    return absl::InvalidArgumentError("a restore id is letters and digits");
  }
  if (header.state_size() > config_.max_state_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the state is ", header.state_size(), " bytes; this agent accepts at most ",
        config_.max_state_bytes));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!busy_.empty() && busy_ != id) {
      return absl::UnavailableError(absl::StrCat(
          "member ", member(), " is busy with restore ", busy_, "; retry later"));
    }
    busy_ = id;
  }
  absl::StatusOr<FileSink> db = FileSink::Create(RecordPath(id, "db"), 0600, false);
  if (!db.ok()) {
    Forget(id);
    return db.status();
  }
  return std::unique_ptr<Prepare>(new PrepareImpl(this, header, std::move(*db)));
}

absl::Status ClusterRestore::Stop(const std::string& id) {
  SA_ASSIGN_OR_RETURN(Record r, Load(id));
  if (r.phase != "prepared" && r.phase != "stopped") {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore ", id, " is ", r.phase, " on member ", member()));
  }
  SA_RETURN_IF_ERROR(supervisor_->Stop(absl::Seconds(30)));
  r.phase = "stopped";
  SA_RETURN_IF_ERROR(Save(r));
  Log(LogLevel::kInfo, "etcd stopped for a restore", {{"restore_id", id}});
  Failpoint("etcd-restore-stopped");
  return absl::OkStatus();
}

absl::Status ClusterRestore::Commit(const std::string& id, absl::Time deadline) {
  SA_ASSIGN_OR_RETURN(Record r, Load(id));
  const std::string& data = config_.command.data_dir;
  const std::string new_dir = data + ".restore-" + id;
  const std::string pre_dir = data + ".pre-restore-" + id;
  if (r.phase == "prepared" || r.phase == "stopped") {
    SA_RETURN_IF_ERROR(supervisor_->Stop(absl::Seconds(30)));
    r.phase = "committing";
    SA_RETURN_IF_ERROR(Save(r));
  }
  if (r.phase == "committing") {
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
    r.phase = "committed";
    SA_RETURN_IF_ERROR(Save(r));
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
      "etcd on member ", member(), " did not answer after the restore: ",
      last.message()));
}

absl::Status ClusterRestore::Abort(const std::string& id) {
  absl::StatusOr<Record> r = Load(id);
  if (r.ok() && (r->phase == "committing" || r->phase == "committed")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore ", id, " is already ", r->phase, " on member ", member()));
  }
  std::error_code ec;
  fs::remove_all(config_.command.data_dir + ".restore-" + id, ec);
  unlink(RecordPath(id, "db").c_str());
  Forget(id);
  if (r.ok()) supervisor_->Resume();  // runs again if it was stopped
  if (r.ok()) Log(LogLevel::kInfo, "etcd restore aborted", {{"restore_id", id}});
  return absl::OkStatus();
}

absl::Status ClusterRestore::Finalize(const std::string& id) {
  absl::StatusOr<Record> r = Load(id);
  if (!r.ok()) return absl::OkStatus();  // done already
  if (r->phase != "committed") {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore ", id, " is ", r->phase, ", not committed, on member ", member()));
  }
  const std::string pre_dir = config_.command.data_dir + ".pre-restore-" + id;
  if (!config_.keep_pre_restore) {
    std::error_code ec;
    fs::remove_all(pre_dir, ec);
  }
  Forget(id);
  return absl::OkStatus();
}

v1::EtcdDecisionResponse::Decision ClusterRestore::Decision(const std::string& id) {
  if (Exists(RecordPath(id, "decision"))) return v1::EtcdDecisionResponse::DECISION_COMMIT;
  std::lock_guard<std::mutex> l(mu_);
  if (coordinating_ == id) return v1::EtcdDecisionResponse::DECISION_PENDING;
  return v1::EtcdDecisionResponse::DECISION_UNKNOWN;
}

// --- Coordinator ------------------------------------------------------------

absl::Status ClusterRestore::PrepareOn(const std::string& m, const std::string& id,
                                       const SnapshotMeta& meta,
                                       const std::string& sha256,
                                       const StateOpener& open_state) {
  v1::EtcdPrepareHeader header;
  header.set_restore_id(id);
  header.set_coordinator(member());
  header.set_state_size(meta.size);
  header.set_state_sha256(sha256);
  header.set_snapshot_id(meta.id);
  SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
  if (m == member()) {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<Prepare> p, BeginPrepare(header));
    SA_RETURN_IF_ERROR(CopyAll(src.get(), p.get(), kChunk).status());
    return p->Finish();
  }
  std::string buf(kChunk, '\0');
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Peer> peer,
                      Peer::Connect(config_.agents.at(m), config_.peers));
  grpc::ClientContext ctx;
  peer->Prepare(&ctx, absl::Now() + absl::Hours(1));
  v1::EtcdRestoreStepResponse resp;
  auto writer = peer->stub()->Prepare(&ctx, &resp);
  v1::EtcdPrepareRequest first;
  *first.mutable_header() = header;
  bool ok = writer->Write(first);
  absl::Status local;
  while (ok) {
    absl::StatusOr<size_t> n = src->Read(&buf[0], buf.size());
    if (!n.ok()) {
      local = n.status();
      ctx.TryCancel();
      break;
    }
    if (*n == 0) break;
    v1::EtcdPrepareRequest req;
    req.set_chunk(buf.data(), *n);
    ok = writer->Write(req);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  SA_RETURN_IF_ERROR(local);
  return peer->From(s);
}

absl::Status ClusterRestore::StepOn(const std::string& m, const char* step,
                                    const std::string& id, absl::Time deadline) {
  const std::string s(step);
  if (m == member()) {
    if (s == "Stop") return Stop(id);
    if (s == "Commit") return Commit(id, deadline);
    if (s == "Abort") return Abort(id);
    return Finalize(id);
  }
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Peer> peer,
                      Peer::Connect(config_.agents.at(m), config_.peers));
  grpc::ClientContext ctx;
  peer->Prepare(&ctx, deadline);
  v1::EtcdRestoreStep req;
  req.set_restore_id(id);
  v1::EtcdRestoreStepResponse resp;
  auto* stub = peer->stub();
  grpc::Status st = s == "Stop"     ? stub->Stop(&ctx, req, &resp)
                    : s == "Commit" ? stub->Commit(&ctx, req, &resp)
                    : s == "Abort"  ? stub->Abort(&ctx, req, &resp)
                                    : stub->Finalize(&ctx, req, &resp);
  return peer->From(st);
}

void ClusterRestore::AbortEverywhere(const std::string& id,
                                     const std::vector<std::string>& members) {
  auto failed = ForEach(members, [&](const std::string& m) {
    return StepOn(m, "Abort", id, absl::Now() + absl::Seconds(10));
  });
  if (!failed.empty()) {
    Log(LogLevel::kWarning,
        "etcd restore: some agents could not be told to abort; they drop the "
        "restore themselves when they ask for the decision",
        {{"restore_id", id}, {"errors", Describe(failed)}});
  }
}

absl::Status ClusterRestore::CheckReady(absl::Time deadline) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!busy_.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "a restore (", busy_, ") is in progress on member ", member(),
          "; retry when it has finished"));
    }
  }
  return local_->Status(deadline).status();
}

absl::StatusOr<RestoreResult> ClusterRestore::Run(const SnapshotMeta& meta,
                                                  const StateOpener& open_state,
                                                  absl::Time deadline) {
  SA_RETURN_IF_ERROR(CheckReady(deadline));
  SA_ASSIGN_OR_RETURN(etcdserverpb::MemberListResponse ml,
                      local_->MemberList(std::min(deadline, absl::Now() + absl::Seconds(10))));
  std::vector<std::string> members;
  for (const auto& m : ml.members()) {
    if (m.name().empty()) {
      return absl::UnavailableError(absl::StrCat(
          "etcd member ", EtcdId(m.id()), " has not started yet; restore "
          "when every member runs"));
    }
    if (!config_.agents.count(m.name())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no agent is known for etcd member \"", m.name(),
          "\" (--etcd-agents): a restore needs the agent of every member"));
    }
    members.push_back(m.name());
  }
  if (std::find(members.begin(), members.end(), member()) == members.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this agent's etcd (--name ", member(), ") is not in the cluster's member list"));
  }
  std::string sha256;
  {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
    SA_ASSIGN_OR_RETURN(Digest d, Sha256OfSource(src.get()));
    sha256 = HexLower(d);
  }
  const std::string id = RandomId();
  {
    std::lock_guard<std::mutex> l(mu_);
    coordinating_ = id;
  }
  auto done_coordinating = [&] {
    std::lock_guard<std::mutex> l(mu_);
    coordinating_.clear();
  };
  Log(LogLevel::kInfo, "etcd restore: preparing every member",
      {{"restore_id", id}, {"members", absl::StrJoin(members, ",")},
       {"snapshot_id", meta.id}});

  auto failed = ForEach(members, [&](const std::string& m) {
    return PrepareOn(m, id, meta, sha256, open_state);
  });
  if (!failed.empty()) {
    AbortEverywhere(id, members);
    done_coordinating();
    return absl::Status(failed[0].second.code(),
                        absl::StrCat("the restore was prepared nowhere: ",
                                     Describe(failed), "; nothing changed"));
  }
  failed = ForEach(members, [&](const std::string& m) {
    return StepOn(m, "Stop", id, absl::Now() + absl::Seconds(60));
  });
  if (!failed.empty()) {
    AbortEverywhere(id, members);
    done_coordinating();
    return absl::Status(failed[0].second.code(),
                        absl::StrCat("not every member could be stopped: ",
                                     Describe(failed),
                                     "; nothing changed (the members run their "
                                     "old data again)"));
  }
  // The decision. From here on the restore happens.
  nlohmann::json decision = {{"id", id}, {"members", members},
                             {"revision", meta.etcd.revision}};
  absl::Status decided = WriteFileAtomically(RecordPath(id, "decision"), decision.dump() + "\n");
  if (!decided.ok()) {
    AbortEverywhere(id, members);
    done_coordinating();
    return decided;
  }
  done_coordinating();
  Log(LogLevel::kInfo, "etcd restore: decided to commit", {{"restore_id", id}});
  Failpoint("etcd-restore-decided");
  return FinishCommitted(id, members, &ml, &meta, deadline);
}

absl::StatusOr<RestoreResult> ClusterRestore::FinishCommitted(
    const std::string& id, const std::vector<std::string>& members,
    const etcdserverpb::MemberListResponse* member_list, const SnapshotMeta* meta,
    absl::Time deadline) {
  // Commit everywhere, retrying members that do not answer yet.
  std::vector<std::string> pending = members;
  while (!pending.empty()) {
    auto failed = ForEach(pending, [&](const std::string& m) {
      return StepOn(m, "Commit", id, std::min(deadline, absl::Now() + absl::Seconds(120)));
    });
    pending.clear();
    for (const auto& f : failed) pending.push_back(f.first);
    if (pending.empty()) break;
    if (absl::Now() >= deadline) {
      return absl::AbortedError(absl::StrCat(
          "the restore is decided and committed on some members, but not yet "
          "confirmed by: ", Describe(failed),
          ". Their agents finish it when they are reachable (the decision is "
          "recorded); check the cluster before doing anything else"));
    }
    absl::SleepFor(absl::Seconds(1));
  }
  etcdserverpb::MemberListResponse ml;
  if (member_list != nullptr) {
    ml = *member_list;
  } else {
    SA_ASSIGN_OR_RETURN(ml, local_->MemberList(deadline));
  }
  SnapshotMeta none;
  SA_RETURN_IF_ERROR(WaitForRestoredCluster(ml, meta ? *meta : none, deadline));
  auto failed = ForEach(members, [&](const std::string& m) {
    return StepOn(m, "Finalize", id, absl::Now() + absl::Seconds(60));
  });
  if (failed.empty()) {
    unlink(RecordPath(id, "decision").c_str());
  } else {
    Log(LogLevel::kWarning, "etcd restore: not every member finalized",
        {{"restore_id", id}, {"errors", Describe(failed)}});
  }
  SA_ASSIGN_OR_RETURN(etcdserverpb::StatusResponse st, local_->Status(deadline));
  Log(LogLevel::kInfo, "etcd restore: the cluster serves the restored data",
      {{"restore_id", id}, {"revision", st.header().revision()}});
  return RestoreResult{st.raftindex()};
}

absl::Status ClusterRestore::WaitForRestoredCluster(
    const etcdserverpb::MemberListResponse& ml, const SnapshotMeta& meta,
    absl::Time deadline) {
  std::vector<std::unique_ptr<EtcdClient>> clients;
  for (const auto& m : ml.members()) {
    if (m.clienturls().empty()) continue;
    SA_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> c,
                        local_->ForEndpoint(m.clienturls(0)));
    clients.push_back(std::move(c));
  }
  std::string last = "no answer yet";
  while (absl::Now() < deadline) {
    bool all = true;
    uint64_t cluster = 0;
    for (auto& c : clients) {
      auto st = c->Status(std::min(deadline, absl::Now() + absl::Seconds(2)));
      if (!st.ok()) {
        all = false;
        last = std::string(st.status().message());
        break;
      }
      if (st->leader() == 0 || st->header().revision() < meta.etcd.revision ||
          (cluster != 0 && st->header().cluster_id() != cluster)) {
        all = false;
        last = absl::StrCat("member at ", c->endpoint(), " has leader ",
                            EtcdId(st->leader()), ", revision ",
                            st->header().revision());
        break;
      }
      cluster = st->header().cluster_id();
    }
    if (all) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "the restored cluster did not become healthy before the deadline: ", last));
}

// --- Start-up and recovery --------------------------------------------------

absl::StatusOr<std::unique_ptr<ClusterRestore>> ClusterRestore::Start(
    ClusterRestoreConfig config, EtcdClient* local) {
  if (::mkdir(config.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "cannot create", config.state_dir);
  }
  if (!config.agents.count(config.command.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--etcd-agents must list this member (", config.command.name, ")"));
  }
  std::unique_ptr<ClusterRestore> cr(new ClusterRestore(std::move(config), local));
  // Records that keep etcd stopped until the decision is known.
  bool hold = false;
  SA_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(cr->config_.state_dir));
  for (absl::string_view name : names) {
    if (!absl::ConsumeSuffix(&name, ".state")) continue;
    absl::StatusOr<Record> r = cr->Load(std::string(name));
    if (r.ok() && r->phase == "stopped") hold = true;
  }
  cr->supervisor_ = std::make_unique<Supervisor>(cr->config_.command, !hold);
  cr->recovery_ = std::thread([p = cr.get()] { p->Recover(); });
  return cr;
}

ClusterRestore::~ClusterRestore() {
  stopping_ = true;
  if (recovery_.joinable()) recovery_.join();
  supervisor_.reset();
}

absl::Status ClusterRestore::Resolve(const Record& r) {
  v1::EtcdDecisionResponse::Decision decision =
      v1::EtcdDecisionResponse::DECISION_UNKNOWN;
  if (r.coordinator == member()) {
    decision = Decision(r.id);
  } else if (config_.agents.count(r.coordinator)) {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<Peer> peer,
                        Peer::Connect(config_.agents.at(r.coordinator), config_.peers));
    grpc::ClientContext ctx;
    peer->Prepare(&ctx, absl::Now() + absl::Seconds(5));
    v1::EtcdRestoreStep req;
    req.set_restore_id(r.id);
    v1::EtcdDecisionResponse resp;
    SA_RETURN_IF_ERROR(peer->From(peer->stub()->Decision(&ctx, req, &resp)));
    decision = resp.decision();
  }
  switch (decision) {
    case v1::EtcdDecisionResponse::DECISION_COMMIT:
      return Commit(r.id, absl::Now() + absl::Minutes(5));
    case v1::EtcdDecisionResponse::DECISION_PENDING:
      return absl::UnavailableError("the coordinator has not decided yet");
    default:
      // No decision recorded: it was never committed.
      return Abort(r.id);
  }
}

void ClusterRestore::Recover() {
  std::vector<std::string> records, decisions;
  for (const std::string& file : ListDir(config_.state_dir).value_or(std::vector<std::string>{})) {
    absl::string_view name = file;
    if (absl::ConsumeSuffix(&name, ".state")) records.emplace_back(name);
    name = file;
    if (absl::ConsumeSuffix(&name, ".decision")) decisions.emplace_back(name);
  }
  // A commit that was under way: finish it (etcd then runs the restored
  // data; the coordinator finalizes).
  std::vector<Record> undecided;
  for (const std::string& id : records) {
    absl::StatusOr<Record> r = Load(id);
    if (!r.ok()) continue;
    Log(LogLevel::kWarning, "unfinished etcd restore found at start-up",
        {{"restore_id", id}, {"phase", r->phase}, {"coordinator", r->coordinator}});
    if (r->phase == "committing" || r->phase == "committed") {
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
  std::thread redrive([this, decisions] {
    for (const std::string& id : decisions) {
      if (stopping_) return;
      absl::StatusOr<std::string> text = ReadSmallFile(RecordPath(id, "decision"));
      nlohmann::json j = nlohmann::json::parse(text.value_or(""), nullptr, false);
      if (j.is_discarded() || !j["members"].is_array()) continue;
      auto members = j["members"].get<std::vector<std::string>>();
      SnapshotMeta meta;
      if (j["revision"].is_number_integer()) meta.etcd.revision = j["revision"];
      Log(LogLevel::kWarning, "finishing a decided etcd restore", {{"restore_id", id}});
      absl::StatusOr<RestoreResult> r =
          FinishCommitted(id, members, nullptr, &meta, absl::Now() + absl::Minutes(30));
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
    for (const Record& r : undecided) {
      absl::Status s = Resolve(r);
      if (!s.ok() && round % 30 == 0) {
        Log(LogLevel::kWarning,
            r.phase == "stopped"
                ? "etcd stays stopped until the restore's coordinator says what was decided"
                : "waiting for the restore's coordinator",
            {{"restore_id", r.id}, {"coordinator", r.coordinator}, {"error", s.message()}});
      }
    }
    ++round;
    for (int i = 0; i < 10 && !stopping_; ++i) absl::SleepFor(absl::Milliseconds(100));
    undecided.clear();
    for (const std::string& file :
         ListDir(config_.state_dir).value_or(std::vector<std::string>{})) {
      {
        absl::string_view name = file;
        if (!absl::ConsumeSuffix(&name, ".state")) continue;
        const std::string id(name);
        {
          std::lock_guard<std::mutex> l(mu_);
          if (coordinating_ == id) continue;  // ours, in progress
        }
        struct stat st;
        if (stat(RecordPath(id, "state").c_str(), &st) != 0 ||
            absl::Now() - absl::FromTimeT(st.st_mtime) < config_.resolve_after) {
          continue;
        }
        absl::StatusOr<Record> r = Load(id);
        if (r.ok() && (r->phase == "prepared" || r->phase == "stopped")) {
          undecided.push_back(*r);
        }
      }
    }
  }
  redrive.join();
}

}  // namespace snapshot
