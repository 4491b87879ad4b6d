#include "core/remote_sync.h"

#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "base/env.h"
#include "archive/archive.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/thread_name.h"
#include "core/snapshot_ops.h"

namespace snapshot {
namespace {

std::string SidecarJson(const CatalogEntry& e, const std::string& cluster,
                        const RemoteUpload& up, bool encrypted,
                        const std::vector<age::X25519Recipient>& recipients) {
  nlohmann::json j = nlohmann::json::parse(CatalogEntryJson(e));
  j.erase("stored_size");  // how the local catalog keeps it; "encrypted" below is the object's
  j["cluster"] = cluster;
  j["object_size"] = up.object_size;
  j["object_sha256"] = up.object_sha256;
  j["encrypted"] = encrypted;
  // Public keys: which identity opens the object.
  if (encrypted && !recipients.empty()) {
    j["recipients"] = nlohmann::json::array();
    for (const age::X25519Recipient& r : recipients) j["recipients"].push_back(r.Encode());
  }
  return j.dump();
}

// Copies the file at `path` into `sink`, until the end or `stopping`.
absl::Status CopyFile(const std::string& path, ByteSink* sink, const std::atomic<bool>& stopping) {
  SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
  StoppableSink stoppable(sink, &stopping, absl::InfiniteFuture(), "upload");
  return CopyAll(&src, &stoppable).status();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteSync>> RemoteSync::Start(
    std::unique_ptr<RemoteStore> store, RemoteOptions options, Catalog* catalog,
    std::function<bool()> is_leader, std::function<void(bool)> on_health) {
  if (options.cluster.empty() || options.cluster.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        "--remote-cluster must name this cluster (no '/'): it keeps its snapshots apart from "
        "other clusters' under the same prefix");
  }
  if (mkdir(options.journal_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "cannot create", options.journal_dir);
  }
  std::unique_ptr<RemoteSync> r(new RemoteSync(std::move(store), std::move(options), catalog,
                                               std::move(is_leader), std::move(on_health)));
  // Uploads a killed agent began: abort them (the store keeps their parts,
  // and bills them, until then).
  SA_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(r->options_.journal_dir));
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(r->options_.journal_dir, "/", name);
    absl::StatusOr<std::string> text = ReadSmallFile(path);
    const size_t nl = text.ok() ? text->find('\n') : std::string::npos;
    if (nl != std::string::npos) {
      const std::string key = text->substr(0, nl), id = text->substr(nl + 1);
      absl::Status s = r->store_->client()->AbortMultipartUpload(key, id);
      Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarning,
          s.ok() ? "aborted an upload left by an earlier run"
                 : "cannot abort an upload left by an earlier run; it is retried at the next start",
          {{"key", key}, {"error", s.message()}});
      if (!s.ok()) continue;
    }
    (void)unlink(path.c_str());
  }
  r->on_health_(true);
  r->thread_ = std::thread([p = r.get()] { p->Run(); });
  return r;
}

RemoteSync::RemoteSync(std::unique_ptr<RemoteStore> store, RemoteOptions options,
                       Catalog* catalog, std::function<bool()> is_leader,
                       std::function<void(bool)> on_health)
    : store_(std::move(store)),
      options_(std::move(options)),
      catalog_(catalog),
      is_leader_(std::move(is_leader)),
      on_health_(std::move(on_health)),
      streak_("the remote store " + store_->Where(), options_.max_failures, on_health_) {}

RemoteSync::~RemoteSync() { Stop(); }

void RemoteSync::Stop() {
  stopping_ = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RemoteSync::Kick() {
  {
    std::lock_guard<std::mutex> l(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

void RemoteSync::Run() {
  SetThreadName("sa-remote-sync");
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    l.unlock();
    absl::Status s = Pass();
    if (!s.ok() && s.code() != absl::StatusCode::kCancelled) {
      Log(LogLevel::kWarning, "remote pass failed",
          {{"remote", store_->Where()}, {"error", s.message()}});
    }
    if (options_.verify_interval > absl::ZeroDuration() && absl::Now() >= next_verify_ &&
        is_leader_()) {
      next_verify_ = absl::Now() + options_.verify_interval;
      (void)VerifyNext();  // logged and counted by Verify
    }
    l.lock();
    cv_.wait_for(l, absl::ToChronoMilliseconds(options_.interval),
                 [this] { return stop_ || kicked_; });
    kicked_ = false;
  }
}

std::string RemoteSync::JournalPath(const std::string& upload_id) const {
  return absl::StrCat(options_.journal_dir, "/", HexLower(Sha256Of(upload_id)).substr(0, 32));
}

absl::StatusOr<std::vector<RemoteEntry>> RemoteSync::Refresh() {
  SA_ASSIGN_OR_RETURN(std::vector<RemoteSnapshot> objects, store_->List());
  std::vector<RemoteEntry> out;
  for (const RemoteSnapshot& o : objects) {
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = sidecars_.find(o.sidecar_key);
      if (it != sidecars_.end()) {
        out.push_back(it->second);
        continue;
      }
    }
    // A sidecar is read once; what it says does not change.
    absl::StatusOr<std::string> text = store_->ReadSidecar(o);
    if (!text.ok()) {
      if (text.status().code() == absl::StatusCode::kNotFound) continue;  // deleted meanwhile
      return text.status();
    }
    absl::StatusOr<CatalogEntry> e = ParseCatalogEntryJson(*text);
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    if (!e.ok() || e->id != o.id || !j.is_object()) {
      Log(LogLevel::kWarning, "ignoring a remote snapshot whose sidecar cannot be read",
          {{"key", o.sidecar_key}, {"error", e.ok() ? "id mismatch" : e.status().message()}});
      continue;
    }
    RemoteEntry r{*e, o, j.value("object_sha256", std::string())};
    {
      std::lock_guard<std::mutex> l(mu_);
      sidecars_[o.sidecar_key] = r;
    }
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const RemoteEntry& a, const RemoteEntry& b) {
    return a.entry.id > b.entry.id;
  });
  uint64_t bytes = 0, count = 0;
  for (const RemoteEntry& r : out) {
    if (r.object.cluster != options_.cluster) continue;
    bytes += r.object.archive_size;
    ++count;
  }
  options_.metrics->SetRemote(count, bytes);
  std::lock_guard<std::mutex> l(mu_);
  listed_ = out;
  listed_at_ = absl::Now();
  return out;
}

absl::StatusOr<std::vector<RemoteEntry>> RemoteSync::List(absl::Duration max_age) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (absl::Now() - listed_at_ <= max_age) return listed_;
  }
  return Refresh();
}

absl::Status RemoteSync::Upload(const CatalogEntry& e) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Catalog::Pin> pin, catalog_->Acquire(e.id));
  const absl::Time start = absl::Now();
  std::string journal;
  // A file encrypted at rest (--encrypt-local, to the same recipients) goes
  // as it is.
  const bool as_is = pin->entry().encrypted;
  const bool encrypt = as_is || !options_.recipients.empty();
  absl::StatusOr<RemoteUpload> up = store_->Upload(
      options_.cluster, e.id, encrypt,
      [&](ByteSink* sink) -> absl::Status {
        if (!encrypt || as_is) return CopyFile(pin->path(), sink, stopping_);
        SA_ASSIGN_OR_RETURN(std::unique_ptr<age::Encryptor> enc,
                            age::Encryptor::Create(options_.recipients, sink));
        SA_RETURN_IF_ERROR(CopyFile(pin->path(), enc.get(), stopping_));
        return enc->Finish();
      },
      [&](const RemoteUpload& u) {
        return SidecarJson(e, options_.cluster, u, encrypt, options_.recipients);
      },
      [&](const std::string& key, const std::string& upload_id) {
        journal = JournalPath(upload_id);
        absl::Status s = WriteFileAtomically(journal, absl::StrCat(key, "\n", upload_id));
        if (!s.ok()) {
          Log(LogLevel::kWarning, "cannot record an upload in progress",
              {{"file", journal}, {"error", s.message()}});
        }
      });
  if (!journal.empty()) (void)unlink(journal.c_str());
  if (up.ok() && options_.verify_after_upload) {
    RemoteSnapshot o{options_.cluster,
                     e.id,
                     store_->ArchiveKey(options_.cluster, e.id, encrypt),
                     store_->SidecarKey(options_.cluster, e.id),
                     up->object_size,
                     encrypt,
                     absl::Now()};
    absl::Status checked = Verify(RemoteEntry{e, o, up->object_sha256});
    if (!checked.ok()) {
      if (checked.code() == absl::StatusCode::kDataLoss) {
        // Not what was sent: gone, so that the next pass uploads it again.
        (void)store_->Delete(o);
      }
      up = checked;
    }
  }
  options_.metrics->RemoteUpload(up.ok() ? "success" : "failure", up.ok() ? up->object_size : 0,
                                 absl::Now() - start);
  if (!up.ok()) return up.status();
  Log(LogLevel::kInfo, "snapshot uploaded",
      {{"id", e.id},
       {"remote", store_->Where()},
       {"bytes", up->object_size},
       {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  options_.metrics->SetRemoteLastSuccess(absl::Now());
  return absl::OkStatus();
}

void RemoteSync::ApplyRetention(const std::vector<RemoteEntry>& remote) {
  std::vector<RetentionItem> items;
  std::map<std::string, const RemoteEntry*> by_id;
  for (const RemoteEntry& r : remote) {
    if (r.object.cluster != options_.cluster) continue;  // never another cluster's
    items.push_back({r.entry.id, r.entry.created, r.object.archive_size, false});
    by_id[r.entry.id] = &r;
  }
  for (const std::string& id : SnapshotsToDelete(items, options_.retention)) {
    const RemoteEntry* r = by_id[id];
    absl::Status s = store_->Delete(r->object);
    options_.metrics->RemoteDeleted(s.ok());
    if (s.ok()) {
      Log(LogLevel::kInfo, "remote retention deleted a snapshot",
          {{"id", id}, {"remote", store_->Where()}});
      std::lock_guard<std::mutex> l(mu_);
      sidecars_.erase(r->object.sidecar_key);
      listed_at_ = absl::InfinitePast();
    } else {
      Log(LogLevel::kError, "remote retention cannot delete a snapshot",
          {{"id", id}, {"remote", store_->Where()}, {"error", s.message()}});
    }
  }
}

absl::Status RemoteSync::Pass() {
  std::lock_guard<std::mutex> pass(pass_mu_);
  if (!is_leader_()) {
    // Uploads are the leader's job: a follower's remote is not failing.
    if (streak_.failures() > 0) options_.metrics->SetRemoteConsecutiveFailures(streak_.Record(true));
    return absl::OkStatus();
  }
  absl::Status result = [&]() -> absl::Status {
    SA_ASSIGN_OR_RETURN(std::vector<RemoteEntry> remote, Refresh());
    std::set<std::string> there;
    for (const RemoteEntry& r : remote) {
      if (r.object.cluster == options_.cluster) there.insert(r.entry.id);
    }
    bool uploaded = false;
    for (const CatalogEntry& e : catalog_->List()) {  // newest first
      if (!options_.origins.count(e.origin) || there.count(e.id)) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) return absl::CancelledError("the agent is stopping");
      }
      absl::Status s = Upload(e);
      if (s.code() == absl::StatusCode::kNotFound && !catalog_->Get(e.id).ok()) continue;  // deleted meanwhile
      SA_RETURN_IF_ERROR(s);
      uploaded = true;
    }
    if (uploaded) {
      SA_ASSIGN_OR_RETURN(remote, Refresh());
    }
    ApplyRetention(remote);
    absl::StatusOr<int> aborted =
        store_->AbortLeftUploads(options_.cluster, absl::Now() - options_.left_upload_age);
    if (aborted.ok() && *aborted > 0) {
      Log(LogLevel::kInfo, "aborted abandoned uploads", {{"count", *aborted}});
    }
    return absl::OkStatus();
  }();
  if (result.code() == absl::StatusCode::kCancelled) return result;
  options_.metrics->SetRemoteConsecutiveFailures(streak_.Record(result.ok()));
  return result;
}

absl::StatusOr<RemoteEntry> RemoteSync::Find(const std::string& id) {
  // A listing at most a second old: an id nobody has costs at most one LIST
  // a second, whoever asks.
  SA_ASSIGN_OR_RETURN(std::vector<RemoteEntry> remote, List(absl::Seconds(1)));
  const RemoteEntry* found = nullptr;
  // This cluster's first, then another's (a new cluster restoring an old
  // one's history).
  for (const RemoteEntry& r : remote) {
    if (r.entry.id == id && (found == nullptr || r.object.cluster == options_.cluster)) {
      found = &r;
    }
  }
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat("no snapshot \"", id, "\" in the catalog or in ",
                                            store_->Where()));
  }
  return *found;
}

absl::StatusOr<uint64_t> RemoteSync::FetchObject(const RemoteEntry& r, uint64_t offset,
                                                 ByteSink* sink) {
  return store_->Fetch(r.object, offset, sink, MaxObjectBytes());
}

absl::Status RemoteSync::Import(const std::string& id) {
  SA_ASSIGN_OR_RETURN(const RemoteEntry r, Find(id));
  if (r.object.encrypted && options_.identities.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot ", id, " is encrypted in the bucket (", r.object.archive_key,
        "); start the agent with --identity-file holding a key it was encrypted to"));
  }
  Log(LogLevel::kInfo, "fetching a snapshot from the remote store",
      {{"id", id},
       {"key", r.object.archive_key},
       {"bytes", r.object.archive_size},
       {"encrypted", r.object.encrypted}});
  absl::StatusOr<CatalogEntry> e = catalog_->Import(r.entry, [&](ByteSink* sink) -> absl::Status {
    if (!r.object.encrypted) return FetchObject(r, 0, sink).status();
    // Spooled, then decrypted: every chunk is authenticated before the
    // catalog sees it.
    return WithObject(r, [&](ByteSource* plain) { return CopyAll(plain, sink).status(); });
  });
  return e.status();
}

uint64_t RemoteSync::MaxObjectBytes() const {
  // An age file holds the archive plus its header and a 16-byte tag per
  // 64 KiB chunk: far less than this bound.
  return options_.max_archive_bytes + options_.max_archive_bytes / 64 + age::kMaxHeaderBytes +
         age::kChunkSize;
}

namespace {


// `s`, its message starting with the object's key (once).
absl::Status Named(const absl::Status& s, const std::string& key) {
  if (s.ok() || absl::StartsWith(s.message(), key)) return s;
  return absl::Status(s.code(), absl::StrCat(key, ": ", s.message()));
}

}  // namespace

absl::Status RemoteSync::WithObject(const RemoteEntry& r,
                                    const std::function<absl::Status(ByteSource*)>& plaintext) {
  // A stale spool (a killed agent's) is removed at the next start.
  SA_ASSIGN_OR_RETURN(FileSink spool,
                      FileSink::CreateUnique(options_.spool_dir + "/" + kSpoolPrefix));
  const std::string path = spool.path();
  const std::string& key = r.object.archive_key;
  absl::Status s = [&]() -> absl::Status {
    HashingSink hashed(&spool);
    SA_RETURN_IF_ERROR(FetchObject(r, 0, &hashed).status());
    SA_RETURN_IF_ERROR(spool.Close());
    const std::string got = HexLower(hashed.Finish());
    if (!r.object_sha256.empty() && got != r.object_sha256) {
      return absl::DataLossError(absl::StrCat(key, ": the object's SHA-256 is ", got,
                                              ", not the ", r.object_sha256,
                                              " recorded when it was uploaded"));
    }
    if (!plaintext) return absl::OkStatus();
    SA_ASSIGN_OR_RETURN(FileSource src, FileSource::Open(path));
    if (!r.object.encrypted) return Named(plaintext(&src), key);
    absl::StatusOr<std::unique_ptr<age::Decryptor>> dec =
        age::Decryptor::Open(&src, {options_.identities, "", age::kMaxScryptLogN});
    if (!dec.ok()) return Named(dec.status(), key);
    return Named(plaintext(dec->get()), key);
  }();
  (void)unlink(path.c_str());
  return s;
}

absl::Status RemoteSync::Verify(const RemoteEntry& r) {
  const bool full = !r.object.encrypted || !options_.identities.empty();
  const absl::Time start = absl::Now();
  absl::Status s = WithObject(
      r, !full ? std::function<absl::Status(ByteSource*)>()
               : [&](ByteSource* archive) -> absl::Status {
                   SA_ASSIGN_OR_RETURN(ArchiveInfo info, ReadArchive(archive, nullptr));
                   if (info.checksum != r.entry.checksum ||
                       HexLower(info.state_sha256) != r.entry.state_sha256) {
                     return absl::DataLossError(absl::StrCat(
                         r.object.archive_key, " holds an archive (", info.checksum,
                         ") that is not the one its sidecar records (", r.entry.checksum, ")"));
                   }
                   return absl::OkStatus();
                 });
  const bool corrupt = s.code() == absl::StatusCode::kDataLoss;
  options_.metrics->RemoteVerify(s.ok() ? "ok" : corrupt ? "corrupt" : "error");
  if (s.ok()) {
    Log(LogLevel::kInfo, "remote snapshot verified",
        {{"id", r.entry.id},
         {"key", r.object.archive_key},
         {"checked", full ? "archive" : "object hash (encrypted; no identity to read it)"},
         {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  } else {
    Log(corrupt ? LogLevel::kError : LogLevel::kWarning,
        corrupt ? "a remote snapshot is corrupt" : "cannot verify a remote snapshot",
        {{"id", r.entry.id}, {"key", r.object.archive_key}, {"error", s.message()}});
  }
  return s;
}

absl::StatusOr<std::string> RemoteSync::VerifyNext() {
  std::lock_guard<std::mutex> pass(pass_mu_);
  SA_ASSIGN_OR_RETURN(std::vector<RemoteEntry> remote, List(absl::Seconds(10)));
  const RemoteEntry* next = nullptr;
  absl::Time next_at = absl::InfiniteFuture();
  std::map<std::string, absl::Time> still;  // what retention deleted is forgotten
  for (const RemoteEntry& r : remote) {  // newest first
    if (r.object.cluster != options_.cluster) continue;
    auto it = verified_.find(r.object.archive_key);
    const absl::Time at = it == verified_.end() ? absl::InfinitePast() : it->second;
    if (it != verified_.end()) still[r.object.archive_key] = at;
    if (at < next_at) {
      next = &r;
      next_at = at;
    }
  }
  verified_ = std::move(still);
  if (next == nullptr) return std::string();
  verified_[next->object.archive_key] = absl::Now();
  SA_RETURN_IF_ERROR(Verify(*next));
  return next->entry.id;
}

}  // namespace snapshot
