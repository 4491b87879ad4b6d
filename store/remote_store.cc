#include "store/remote_store.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "base/thread_name.h"

namespace snapshot {

uint64_t PartSizeFor(uint64_t max_archive_bytes) {
  const uint64_t mib = 1ull << 20;
  uint64_t need = (max_archive_bytes + kMaxParts - 1) / kMaxParts;
  need = (need + mib - 1) / mib * mib;
  return std::max<uint64_t>(std::max<uint64_t>(need, kMinPartSize), 8 * mib);
}

MultipartWriter::MultipartWriter(s3::Client* client, std::string key, uint64_t part_size,
                                 int parallel,
                                 std::function<void(const std::string&)> on_started)
    : client_(client),
      key_(std::move(key)),
      part_size_(std::max(part_size, kMinPartSize)),
      parallel_(std::max(parallel, 1)),
      on_started_(std::move(on_started)) {}

MultipartWriter::~MultipartWriter() {
  (void)Collect(0);
  if (!finished_ && !upload_id_.empty()) (void)client_->AbortMultipartUpload(key_, upload_id_);
}

absl::Status MultipartWriter::Begin() {
  if (!upload_id_.empty()) return absl::OkStatus();
  SA_ASSIGN_OR_RETURN(upload_id_, client_->CreateMultipartUpload(key_));
  if (on_started_) on_started_(upload_id_);
  part_.reserve(part_size_);
  return absl::OkStatus();
}

absl::Status MultipartWriter::Collect(size_t keep) {
  while (in_flight_.size() > keep) {
    InFlight& f = in_flight_.front();
    f.thread.join();
    if (!f.etag->ok()) {
      if (error_.ok()) error_ = f.etag->status();
    } else {
      etags_.push_back(**f.etag);
    }
    in_flight_.erase(in_flight_.begin());
  }
  return error_;
}

absl::Status MultipartWriter::SendPart() {
  SA_RETURN_IF_ERROR(Collect(static_cast<size_t>(parallel_ - 1)));
  if (etags_.size() + in_flight_.size() >= static_cast<size_t>(kMaxParts)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the object ", key_, " would need more than ", kMaxParts, " parts of ", part_size_,
        " bytes"));
  }
  const int number = static_cast<int>(etags_.size() + in_flight_.size() + 1);
  auto data = std::make_shared<std::string>(std::move(part_));
  part_ = std::string();
  part_.reserve(part_size_);
  InFlight f;
  f.etag = std::make_shared<absl::StatusOr<std::string>>(absl::UnknownError("not sent"));
  auto etag = f.etag;
  s3::Client* client = client_;
  std::string key = key_, id = upload_id_;
  f.thread = std::thread(
      [=] {
        SetThreadName("sa-s3-part");
        *etag = client->UploadPart(key, id, number, *data);
      });
  in_flight_.push_back(std::move(f));
  return absl::OkStatus();
}

absl::Status MultipartWriter::Write(absl::string_view data) {
  SA_RETURN_IF_ERROR(error_);
  SA_RETURN_IF_ERROR(Begin());
  hash_.Update(data);
  total_ += data.size();
  while (!data.empty()) {
    const size_t n = std::min<size_t>(data.size(), part_size_ - part_.size());
    part_.append(data.data(), n);
    data.remove_prefix(n);
    if (part_.size() == part_size_) SA_RETURN_IF_ERROR(SendPart());
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MultipartWriter::Finish() {
  SA_RETURN_IF_ERROR(error_);
  SA_RETURN_IF_ERROR(Begin());
  if (!part_.empty() || etags_.size() + in_flight_.size() == 0) SA_RETURN_IF_ERROR(SendPart());
  SA_RETURN_IF_ERROR(Collect(0));
  SA_RETURN_IF_ERROR(client_->CompleteMultipartUpload(key_, upload_id_, etags_));
  finished_ = true;
  digest_ = hash_.Finish();
  SA_ASSIGN_OR_RETURN(s3::ObjectInfo info, client_->HeadObject(key_));
  if (info.size != total_) {
    return absl::DataLossError(absl::StrCat("the store holds ", info.size, " bytes for ", key_,
                                            " where ", total_, " were uploaded"));
  }
  return total_;
}

RemoteStore::RemoteStore(std::shared_ptr<s3::Client> client, std::string prefix,
                         uint64_t part_size, int parallel)
    : client_(std::move(client)),
      prefix_(prefix.empty() ? "" : prefix + "/"),
      part_size_(part_size),
      parallel_(parallel) {}

std::string RemoteStore::Where() const {
  return absl::StrCat("s3://", client_->options().bucket, "/", prefix_);
}

std::string RemoteStore::Dir(const std::string& cluster) const {
  return absl::StrCat(prefix_, cluster, "/");
}

std::string RemoteStore::ArchiveKey(const std::string& cluster, const std::string& id,
                                    bool encrypted) const {
  return absl::StrCat(Dir(cluster), id, encrypted ? kRemoteEncryptedSuffix : kRemoteArchiveSuffix);
}

std::string RemoteStore::SidecarKey(const std::string& cluster, const std::string& id) const {
  return absl::StrCat(Dir(cluster), id, kRemoteSidecarSuffix);
}

absl::StatusOr<RemoteUpload> RemoteStore::Upload(
    const std::string& cluster, const std::string& id, bool encrypted,
    const std::function<absl::Status(ByteSink*)>& write,
    const std::function<std::string(const RemoteUpload&)>& sidecar,
    std::function<void(const std::string&, const std::string&)> on_started) {
  const std::string key = ArchiveKey(cluster, id, encrypted);
  MultipartWriter w(client_.get(), key, part_size_, parallel_,
                    [&](const std::string& upload_id) {
                      if (on_started) on_started(key, upload_id);
                    });
  SA_RETURN_IF_ERROR(write(&w));
  RemoteUpload up;
  SA_ASSIGN_OR_RETURN(up.object_size, w.Finish());
  up.object_sha256 = HexLower(w.sha256());
  SA_RETURN_IF_ERROR(client_->PutObject(SidecarKey(cluster, id), sidecar(up),
                                        {{"Content-Type", "application/json"}}));
  return up;
}

absl::StatusOr<std::vector<RemoteSnapshot>> RemoteStore::List() {
  SA_ASSIGN_OR_RETURN(std::vector<s3::ObjectInfo> objects, client_->ListObjects(prefix_));
  // PREFIX/CLUSTER/ID.{snap,snap.age,json}; anything else is not ours.
  std::map<std::pair<std::string, std::string>, RemoteSnapshot> found;
  std::map<std::pair<std::string, std::string>, bool> sidecars;
  for (const s3::ObjectInfo& o : objects) {
    absl::string_view rest = o.key;
    if (!absl::ConsumePrefix(&rest, prefix_)) continue;
    const size_t slash = rest.find('/');
    if (slash == absl::string_view::npos || slash == 0) continue;
    const std::string cluster(rest.substr(0, slash));
    absl::string_view name = rest.substr(slash + 1);
    if (name.empty() || absl::StrContains(name, "/")) continue;
    if (absl::ConsumeSuffix(&name, kRemoteSidecarSuffix)) {
      sidecars[{cluster, std::string(name)}] = true;
      found[{cluster, std::string(name)}].sidecar_key = o.key;
      continue;
    }
    bool encrypted = false;
    if (absl::ConsumeSuffix(&name, kRemoteEncryptedSuffix)) {
      encrypted = true;
    } else if (!absl::ConsumeSuffix(&name, kRemoteArchiveSuffix)) {
      continue;
    }
    RemoteSnapshot& s = found[{cluster, std::string(name)}];
    s.archive_key = o.key;
    s.archive_size = o.size;
    s.encrypted = encrypted;
    s.uploaded = o.last_modified;
  }
  std::vector<RemoteSnapshot> out;
  for (auto& [k, s] : found) {
    if (s.archive_key.empty() || s.sidecar_key.empty()) continue;  // incomplete
    s.cluster = k.first;
    s.id = k.second;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const RemoteSnapshot& a, const RemoteSnapshot& b) { return a.id < b.id; });
  return out;
}

absl::StatusOr<std::string> RemoteStore::ReadSidecar(const RemoteSnapshot& s) {
  return client_->GetSmallObject(s.sidecar_key, 1 << 20);
}

absl::StatusOr<uint64_t> RemoteStore::Fetch(const RemoteSnapshot& s, uint64_t offset,
                                            ByteSink* sink, uint64_t max_bytes) {
  return client_->GetObject(s.archive_key, offset, sink, max_bytes);
}

absl::Status RemoteStore::Delete(const RemoteSnapshot& s) {
  SA_RETURN_IF_ERROR(client_->DeleteObject(s.sidecar_key));
  return client_->DeleteObject(s.archive_key);
}

absl::StatusOr<int> RemoteStore::AbortLeftUploads(const std::string& cluster, absl::Time before) {
  SA_ASSIGN_OR_RETURN(std::vector<s3::MultipartUpload> uploads,
                      client_->ListMultipartUploads(Dir(cluster)));
  int n = 0;
  for (const s3::MultipartUpload& u : uploads) {
    if (u.initiated >= before) continue;
    SA_RETURN_IF_ERROR(client_->AbortMultipartUpload(u.key, u.upload_id));
    ++n;
  }
  return n;
}

}  // namespace snapshot
