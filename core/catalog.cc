#include "core/catalog.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "archive/meta.h"
#include "base/atomic_file.h"
#include "base/env.h"
#include "base/failpoint.h"
#include "base/log.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

constexpr char kArchiveSuffix[] = ".snap";
constexpr char kEncryptedSuffix[] = ".snap.age";
constexpr char kSidecarSuffix[] = ".json";
constexpr char kTimeFormat[] = "%Y%m%dT%H%M%E3SZ";
constexpr char kTimeParseFormat[] = "%E4Y%m%dT%H%M%E*SZ";  // %Y would eat all digits

// "20261126T130501.123Z-i1234-scheduled[-2]": creation time and origin.
bool ParseId(const std::string& id, absl::Time* created, SnapshotOrigin* origin) {
  const size_t dash = id.find('-');
  std::string err;
  if (dash == std::string::npos ||
      !absl::ParseTime(kTimeParseFormat, id.substr(0, dash), absl::UTCTimeZone(), created, &err)) {
    return false;
  }
  for (SnapshotOrigin o : {SnapshotOrigin::kScheduled, SnapshotOrigin::kOnDemand,
                           SnapshotOrigin::kPreRestore}) {
    if (absl::StrContains(id, absl::StrCat("-", OriginName(o)))) {
      *origin = o;
      return true;
    }
  }
  return false;
}

std::string RandomName() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

absl::Status Unlink(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "cannot remove", path);
  }
  return absl::OkStatus();
}

// A stored archive: the file, decrypted when it is encrypted at rest.
class StoredArchive : public ByteSource {
 public:
  static absl::StatusOr<std::unique_ptr<ByteSource>> Open(
      const std::string& path, bool encrypted, const std::vector<age::X25519Identity>& ids) {
    SA_ASSIGN_OR_RETURN(FileSource file, FileSource::Open(path));
    std::unique_ptr<StoredArchive> r(new StoredArchive(std::move(file)));
    if (!encrypted) return std::unique_ptr<ByteSource>(std::move(r));
    if (ids.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is encrypted at rest: start the agent with --identity-file holding its key"));
    }
    age::Keys keys;
    keys.identities = ids;
    absl::StatusOr<std::unique_ptr<age::Decryptor>> dec = age::Decryptor::Open(&r->file_, keys);
    if (!dec.ok()) {
      return absl::Status(dec.status().code(), absl::StrCat(path, ": ", dec.status().message()));
    }
    r->dec_ = std::move(*dec);
    r->path_ = path;
    return std::unique_ptr<ByteSource>(std::move(r));
  }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (!dec_) return file_.Read(buf, n);
    absl::StatusOr<size_t> got = dec_->Read(buf, n);
    if (!got.ok()) {
      return absl::Status(got.status().code(), absl::StrCat(path_, ": ", got.status().message()));
    }
    return got;
  }

 private:
  explicit StoredArchive(FileSource file) : file_(std::move(file)) {}
  FileSource file_;
  std::unique_ptr<age::Decryptor> dec_;
  std::string path_;
};

}  // namespace

absl::StatusOr<SnapshotOrigin> ParseOrigin(absl::string_view s) {
  for (SnapshotOrigin o : {SnapshotOrigin::kScheduled, SnapshotOrigin::kOnDemand,
                           SnapshotOrigin::kPreRestore}) {
    if (s == OriginName(o)) return o;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown snapshot origin \"", s, "\""));
}

const char* OriginName(SnapshotOrigin o) {
  switch (o) {
    case SnapshotOrigin::kScheduled:
      return "scheduled";
    case SnapshotOrigin::kOnDemand:
      return "on-demand";
    case SnapshotOrigin::kPreRestore:
      return "pre-restore";
  }
  return "on-demand";
}

std::string CatalogEntryJson(const CatalogEntry& e) {
  nlohmann::json j;
  j["id"] = e.id;
  j["created"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.created, absl::UTCTimeZone());
  j["origin"] = OriginName(e.origin);
  j["index"] = e.meta.index;
  j["term"] = e.meta.term;
  j["state_size"] = e.meta.size;
  j["archive_size"] = e.archive_size;
  j["checksum"] = e.checksum;
  j["state_sha256"] = e.state_sha256;
  j["engine"] = e.meta.engine;
  if (e.encrypted) {
    j["encrypted"] = true;
    j["stored_size"] = e.stored_size;
  }
  absl::StatusOr<std::string> meta = EncodeMetaJson(e.meta);
  if (meta.ok()) j["meta"] = nlohmann::json::parse(*meta, nullptr, false);
  return j.dump();
}

absl::StatusOr<CatalogEntry> ParseCatalogEntryJson(absl::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("bad catalog entry: ", what));
  };
  if (!j.is_object()) return bad("not a JSON object");
  CatalogEntry e;
  try {
    e.id = j.at("id").get<std::string>();
    std::string err;
    if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", j.at("created").get<std::string>(),
                         absl::UTCTimeZone(), &e.created, &err)) {
      return bad(absl::StrCat("created: ", err));
    }
    SA_ASSIGN_OR_RETURN(e.origin, ParseOrigin(j.at("origin").get<std::string>()));
    e.archive_size = j.at("archive_size").get<uint64_t>();
    e.checksum = j.at("checksum").get<std::string>();
    e.state_sha256 = j.at("state_sha256").get<std::string>();
    e.encrypted = j.value("encrypted", false);
    e.stored_size = j.value("stored_size", e.archive_size);
    SA_ASSIGN_OR_RETURN(e.meta, ParseMetaJson(j.at("meta").dump()));
  } catch (const nlohmann::json::exception& ex) {
    return bad(ex.what());
  }
  return e;
}

std::string Catalog::ArchivePath(const std::string& id, bool encrypted) const {
  return absl::StrCat(dir_, "/", id, encrypted ? kEncryptedSuffix : kArchiveSuffix);
}
std::string Catalog::SidecarPath(const std::string& id) const {
  return absl::StrCat(dir_, "/", id, kSidecarSuffix);
}

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Open(const std::string& dir,
                                                       CatalogEncryption encryption, Env* env) {
  if (!encryption.recipients.empty() && encryption.identities.empty()) {
    return absl::InvalidArgumentError(
        "encrypting the catalog at rest needs an identity too: every archive is read back and "
        "verified after it is written");
  }
  SA_ASSIGN_OR_RETURN(std::unique_ptr<DirLock> lock, DirLock::Acquire(dir));
  std::unique_ptr<Catalog> c(new Catalog(dir, std::move(lock), std::move(encryption), env));
  SA_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir));
  std::map<std::string, bool> archives;  // id: encrypted
  std::vector<std::string> sidecars;
  int removed = 0;
  for (const std::string& name : names) {
    if (name == "LOCK") continue;
    if (absl::EndsWith(name, ".part")) {
      // A write that did not finish (a crash, a full disk).
      if (Unlink(absl::StrCat(dir, "/", name)).ok()) ++removed;
    } else if (absl::EndsWith(name, kArchiveSuffix)) {
      archives[name.substr(0, name.size() - strlen(kArchiveSuffix))] = false;
    } else if (absl::EndsWith(name, kEncryptedSuffix)) {
      archives[name.substr(0, name.size() - strlen(kEncryptedSuffix))] = true;
    } else if (absl::EndsWith(name, kSidecarSuffix)) {
      sidecars.push_back(name.substr(0, name.size() - strlen(kSidecarSuffix)));
    }
  }
  if (removed > 0) {
    Log(LogLevel::kWarning, "removed unfinished snapshot files from the catalog",
        {{"dir", dir}, {"files", removed}});
  }
  for (const std::string& id : sidecars) {
    auto archive = archives.find(id);
    if (archive == archives.end()) {
      (void)Unlink(c->SidecarPath(id));  // its archive is gone
      continue;
    }
    struct stat st;
    absl::StatusOr<std::string> text = ReadSmallFile(c->SidecarPath(id));
    absl::StatusOr<CatalogEntry> e =
        text.ok() ? ParseCatalogEntryJson(*text) : absl::StatusOr<CatalogEntry>(text.status());
    if (e.ok() && e->id == id && e->encrypted == archive->second &&
        stat(c->ArchivePath(id, e->encrypted).c_str(), &st) == 0 &&
        static_cast<uint64_t>(st.st_size) == e->stored_size) {
      c->entries_[id] = *e;
    }
  }
  for (const auto& [id, encrypted] : archives) {
    if (c->entries_.count(id)) continue;
    // No usable sidecar: rebuild it from the archive.
    CatalogEntry e;
    e.id = id;
    absl::Status s = ParseId(id, &e.created, &e.origin)
                         ? absl::OkStatus()
                         : absl::InvalidArgumentError("the file name is not a catalog id");
    if (s.ok()) {
      absl::StatusOr<std::unique_ptr<ByteSource>> src =
          StoredArchive::Open(c->ArchivePath(id, encrypted), encrypted, c->encryption_.identities);
      absl::StatusOr<ArchiveInfo> info =
          src.ok() ? ReadArchive(src->get(), nullptr) : absl::StatusOr<ArchiveInfo>(src.status());
      struct stat st;
      if (info.ok() && stat(c->ArchivePath(id, encrypted).c_str(), &st) != 0) {
        info = ErrnoStatus(errno, "cannot stat", c->ArchivePath(id, encrypted));
      }
      if (info.ok()) {
        e.meta = info->meta;
        e.archive_size = info->archive_size;
        e.checksum = info->checksum;
        e.state_sha256 = HexLower(info->state_sha256);
        e.encrypted = encrypted;
        e.stored_size = static_cast<uint64_t>(st.st_size);
        s = c->WriteSidecar(e);
      } else {
        s = info.status();
      }
    }
    if (s.ok()) {
      c->entries_[id] = e;
    } else {
      Log(LogLevel::kWarning, "a file in the catalog directory is not a usable snapshot; left alone",
          {{"file", c->ArchivePath(id, encrypted)}, {"error", s.message()}});
    }
  }
  return c;
}

absl::Status Catalog::WriteSidecar(const CatalogEntry& e) {
  return WriteFileAtomically(SidecarPath(e.id), CatalogEntryJson(e));
}

absl::StatusOr<ArchiveInfo> Catalog::WriteAndReadBack(
    const std::function<absl::Status(ByteSink*)>& write, AtomicFile* file,
    const std::string& part, CatalogEntry* e, ReadBack read_back) {
  const bool encrypt = !encryption_.recipients.empty();
  std::unique_ptr<age::Encryptor> enc;
  if (encrypt) {
    SA_ASSIGN_OR_RETURN(enc, age::Encryptor::Create(encryption_.recipients, file));
  }
  SA_RETURN_IF_ERROR(write(enc ? static_cast<ByteSink*>(enc.get()) : file));
  if (enc) SA_RETURN_IF_ERROR(enc->Finish());
  SA_RETURN_IF_ERROR(file->Sync());
  Failpoint("catalog-archive-written");
  e->encrypted = encrypt;
  e->stored_size = file->size();
  // Read it back: what is in the catalog has been verified from the disk.
  SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src,
                      StoredArchive::Open(part, encrypt, encryption_.identities));
  if (read_back == ReadBack::kVerify) return ReadArchive(src.get(), nullptr);
  ArchiveInfo back;
  SA_ASSIGN_OR_RETURN(Digest d, Sha256OfSource(src.get(), &back.archive_size));
  back.checksum = ChecksumString(d);
  return back;
}

absl::StatusOr<CatalogEntry> Catalog::Create(RaftNode* node, const TakeOptions& options,
                                             SnapshotOrigin origin, absl::Time deadline,
                                             const std::atomic<bool>* cancel, ReadBack read_back) {
  const std::string part = absl::StrCat(dir_, "/.", RandomName(), ".part");
  CatalogEntry e;
  e.origin = origin;
  SA_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(part, 0600, env_));
  absl::Status s = [&]() -> absl::Status {
    file.EnableWriteBehind();
    ArchiveInfo info;
    SA_ASSIGN_OR_RETURN(
        ArchiveInfo back,
        WriteAndReadBack(
            [&](ByteSink* sink) -> absl::Status {
              StoppableSink stoppable(sink, cancel, deadline, "snapshot");
              SA_ASSIGN_OR_RETURN(info, TakeArchive(node, options, &stoppable, deadline, nullptr));
              return absl::OkStatus();
            },
            &file, part, &e, read_back));
    if (back.checksum != info.checksum || back.archive_size != info.archive_size ||
        (read_back == ReadBack::kVerify && back.state_sha256 != info.state_sha256)) {
      return absl::DataLossError(absl::StrCat(
          "the snapshot read back from ", part, " differs from what was written (",
          back.checksum, " instead of ", info.checksum, "): is the disk failing?"));
    }
    e.created = absl::Now();
    e.meta = info.meta;
    e.archive_size = info.archive_size;
    e.checksum = info.checksum;
    e.state_sha256 = HexLower(info.state_sha256);
    return absl::OkStatus();
  }();
  if (!s.ok()) return s;  // `file` removes the part
  {
    // The id: creation time, index and origin; a suffix on a clash.
    std::lock_guard<std::mutex> l(mu_);
    const std::string base =
        absl::StrCat(absl::FormatTime(kTimeFormat, e.created, absl::UTCTimeZone()), "-i",
                     e.meta.index, "-", OriginName(origin));
    e.id = base;
    struct stat st;
    for (int n = 2; entries_.count(e.id) || stat(ArchivePath(e.id, false).c_str(), &st) == 0 ||
                    stat(ArchivePath(e.id, true).c_str(), &st) == 0;
         ++n) {
      e.id = absl::StrCat(base, "-", n);
    }
    SA_RETURN_IF_ERROR(file.Commit(ArchivePath(e.id, e.encrypted)));
    entries_[e.id] = e;
  }
  s = WriteSidecar(e);  // without it, the next Open rebuilds it
  if (!s.ok()) {
    Log(LogLevel::kWarning, "cannot write a catalog sidecar; it is rebuilt at the next start",
        {{"id", e.id}, {"error", s.message()}});
  }
  return e;
}

std::vector<CatalogEntry> Catalog::List() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<CatalogEntry> out;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) out.push_back(it->second);
  return out;
}

absl::StatusOr<CatalogEntry> Catalog::Get(const std::string& id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("no snapshot \"", id, "\" in the catalog"));
  }
  return it->second;
}

uint64_t Catalog::TotalBytes() const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t total = 0;
  for (const auto& [id, e] : entries_) total += e.archive_size;
  return total;
}

absl::StatusOr<std::unique_ptr<ByteSource>> Catalog::Pin::Open() const {
  return StoredArchive::Open(path_, entry_.encrypted, catalog_->encryption_.identities);
}

Catalog::Pin::~Pin() {
  std::lock_guard<std::mutex> l(catalog_->mu_);
  if (--catalog_->pins_[entry_.id] == 0) catalog_->pins_.erase(entry_.id);
}

absl::StatusOr<std::unique_ptr<Catalog::Pin>> Catalog::Acquire(const std::string& id) {
  for (int round = 0;; ++round) {
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = entries_.find(id);
      if (it != entries_.end()) {
        ++pins_[id];
        return std::unique_ptr<Pin>(
            new Pin(this, it->second, ArchivePath(id, it->second.encrypted)));
      }
    }
    if (round > 0 || !fallback_) {
      return absl::NotFoundError(absl::StrCat("no snapshot \"", id, "\" in the catalog"));
    }
    SA_RETURN_IF_ERROR(fallback_(id));
  }
}

void Catalog::SetFallback(std::function<absl::Status(const std::string&)> fetch) {
  fallback_ = std::move(fetch);
}

absl::StatusOr<CatalogEntry> Catalog::Import(
    const CatalogEntry& entry, const std::function<absl::Status(ByteSink*)>& write) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = entries_.find(entry.id);
    if (it != entries_.end()) return it->second;
  }
  absl::Time created;
  SnapshotOrigin origin;
  if (!ParseId(entry.id, &created, &origin) || entry.id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", entry.id, "\" is not a catalog snapshot id"));
  }
  const std::string part = absl::StrCat(dir_, "/.", RandomName(), ".part");
  SA_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(part, 0600, env_));
  CatalogEntry stored = entry;
  SA_ASSIGN_OR_RETURN(ArchiveInfo back, WriteAndReadBack(write, &file, part, &stored));
  if (back.checksum != entry.checksum || HexLower(back.state_sha256) != entry.state_sha256 ||
      back.archive_size != entry.archive_size) {
    return absl::DataLossError(absl::StrCat(
        "snapshot ", entry.id, " as received (", back.archive_size, " bytes, ", back.checksum,
        ") differs from its record (", entry.archive_size, " bytes, ", entry.checksum, ")"));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = entries_.find(entry.id);
    if (it != entries_.end()) return it->second;  // imported meanwhile: `file` goes
    SA_RETURN_IF_ERROR(file.Commit(ArchivePath(entry.id, stored.encrypted)));
    entries_[entry.id] = stored;
  }
  absl::Status s = WriteSidecar(stored);
  if (!s.ok()) {
    Log(LogLevel::kWarning, "cannot write a catalog sidecar; it is rebuilt at the next start",
        {{"id", entry.id}, {"error", s.message()}});
  }
  return stored;
}

absl::Status Catalog::DeleteLocked(const std::string& id) {
  if (!entries_.count(id)) {
    return absl::NotFoundError(absl::StrCat("no snapshot \"", id, "\" in the catalog"));
  }
  if (pins_.count(id)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot ", id, " is in use (being fetched or restored); delete it when that ends"));
  }
  // The archive first: a crash in between leaves a sidecar without its
  // archive, which the next Open drops.
  SA_RETURN_IF_ERROR(Unlink(ArchivePath(id, entries_[id].encrypted)));
  (void)Unlink(SidecarPath(id));
  entries_.erase(id);
  return absl::OkStatus();
}

absl::Status Catalog::Delete(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  return DeleteLocked(id);
}

std::vector<std::string> Catalog::ApplyRetention(const RetentionPolicy& policy) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<RetentionItem> items;
  for (const auto& [id, e] : entries_) {
    items.push_back({id, e.created, e.archive_size, pins_.count(id) > 0});
  }
  std::vector<std::string> deleted;
  for (const std::string& id : SnapshotsToDelete(items, policy)) {
    absl::Status s = DeleteLocked(id);
    if (s.ok()) {
      deleted.push_back(id);
    } else {
      Log(LogLevel::kWarning, "retention could not delete a snapshot",
          {{"id", id}, {"error", s.message()}});
    }
  }
  return deleted;
}

}  // namespace snapshot
