// Where snapshots live in an S3 bucket (docs/remote.md, "Layout"):
//
//   PREFIX/CLUSTER/ID.snap        the archive (ID.snap.age when encrypted)
//   PREFIX/CLUSTER/ID.json        its sidecar: the catalog entry and what
//                                 the upload recorded (written last: a
//                                 snapshot without one is incomplete)
//
// CLUSTER is the operator's name for the cluster (--remote-cluster): agents
// of one cluster share it, so after a failover the new leader sees and
// continues the old leader's history, while two clusters pointed at one
// prefix stay apart (each lists every cluster, and changes only its own).
//
// A listing is one paged LIST of PREFIX/ (no request per snapshot); a
// sidecar is read once per snapshot by the caller, which keeps it.
//
// Uploads stream through MultipartWriter: parts of `part_size` bytes,
// `parallel` in flight, each checked by the server against its SHA-256;
// memory stays at (parallel + 1) parts whatever the archive size. A failed
// upload is aborted; uploads left by a killed agent are found and aborted by
// AbortLeftUploads.
//
// Errors: as store/s3/client.h. Threading: RemoteStore's methods may be
// called from several threads; a MultipartWriter is used by one thread.
#ifndef SNAPSHOT_AGENT_STORE_REMOTE_STORE_H_
#define SNAPSHOT_AGENT_STORE_REMOTE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "base/io.h"
#include "base/sha256.h"
#include "store/s3/client.h"

namespace snapshot {

inline constexpr char kRemoteArchiveSuffix[] = ".snap";
inline constexpr char kRemoteEncryptedSuffix[] = ".snap.age";
inline constexpr char kRemoteSidecarSuffix[] = ".json";

// S3's multipart limits: parts of 5 MiB at least, 10,000 at most.
inline constexpr uint64_t kMinPartSize = 5ull << 20;
inline constexpr int kMaxParts = 10000;

// The part size for archives of up to `max_archive_bytes`: at least 8 MiB,
// and large enough for 10,000 parts to hold the largest archive.
uint64_t PartSizeFor(uint64_t max_archive_bytes);

// A ByteSink that is one multipart upload.
class MultipartWriter : public ByteSink {
 public:
  // `on_started` is called with the upload's id once the store created it
  // (to record it, so that a killed agent's upload can be aborted later).
  MultipartWriter(s3::Client* client, std::string key, uint64_t part_size, int parallel,
                  std::function<void(const std::string&)> on_started = nullptr);
  // Aborts the upload unless Finish succeeded.
  ~MultipartWriter() override;

  absl::Status Write(absl::string_view data) override;
  // Sends the last part, completes the upload and checks the object's size
  // with HEAD. Returns the object's size.
  absl::StatusOr<uint64_t> Finish();
  // SHA-256 of every byte written (valid after Finish).
  const Digest& sha256() const { return digest_; }

 private:
  absl::Status Begin();
  absl::Status SendPart();
  absl::Status Collect(size_t keep);  // waits until at most `keep` parts are in flight

  struct InFlight {
    std::thread thread;
    std::shared_ptr<absl::StatusOr<std::string>> etag;
  };

  s3::Client* client_;
  const std::string key_;
  const uint64_t part_size_;
  const int parallel_;
  std::function<void(const std::string&)> on_started_;
  std::string upload_id_;
  std::string part_;
  std::vector<InFlight> in_flight_;
  std::vector<std::string> etags_;
  uint64_t total_ = 0;
  Sha256 hash_;
  Digest digest_{};
  absl::Status error_;
  bool finished_ = false;
};

struct RemoteSnapshot {
  std::string cluster;
  std::string id;
  std::string archive_key;
  std::string sidecar_key;
  uint64_t archive_size = 0;  // the object's size (encrypted size when encrypted)
  bool encrypted = false;
  absl::Time uploaded;
};

struct RemoteUpload {
  uint64_t object_size = 0;
  std::string object_sha256;  // hex, of the object as stored
};

class RemoteStore {
 public:
  RemoteStore(std::shared_ptr<s3::Client> client, std::string prefix, uint64_t part_size,
              int parallel);

  s3::Client* client() { return client_.get(); }
  // "s3://BUCKET/PREFIX" for messages.
  std::string Where() const;
  std::string ArchiveKey(const std::string& cluster, const std::string& id, bool encrypted) const;
  std::string SidecarKey(const std::string& cluster, const std::string& id) const;

  // Uploads the archive that `write` produces into a sink, then the sidecar
  // that `sidecar(upload)` returns. Nothing is listed as a snapshot unless
  // both arrived.
  absl::StatusOr<RemoteUpload> Upload(
      const std::string& cluster, const std::string& id, bool encrypted,
      const std::function<absl::Status(ByteSink*)>& write,
      const std::function<std::string(const RemoteUpload&)>& sidecar,
      std::function<void(const std::string& key, const std::string& upload_id)> on_started =
          nullptr);

  // Every complete snapshot under the prefix, of every cluster, oldest id
  // first; one paged LIST.
  absl::StatusOr<std::vector<RemoteSnapshot>> List();
  absl::StatusOr<std::string> ReadSidecar(const RemoteSnapshot& s);
  // The archive object from `offset` into `sink` (at most `max_bytes`).
  absl::StatusOr<uint64_t> Fetch(const RemoteSnapshot& s, uint64_t offset, ByteSink* sink,
                                 uint64_t max_bytes);
  // The sidecar first (listings stop showing it), then the archive.
  absl::Status Delete(const RemoteSnapshot& s);
  // Aborts the multipart uploads under PREFIX/CLUSTER/ begun before `before`
  // (uploads nobody can still be running). Returns how many.
  absl::StatusOr<int> AbortLeftUploads(const std::string& cluster, absl::Time before);

 private:
  std::string Dir(const std::string& cluster) const;

  std::shared_ptr<s3::Client> client_;
  const std::string prefix_;  // "" or "a/b/"
  const uint64_t part_size_;
  const int parallel_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_REMOTE_STORE_H_
