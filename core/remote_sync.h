// Off-host copies of the catalog (docs/remote.md): every snapshot the local
// catalog stores (of the chosen origins) is uploaded to the remote store by
// the agent whose node leads, the remote has its own retention, and every
// agent configured with the same remote lists — and can fetch or restore —
// what is there, so a new leader, or a new cluster, continues from the
// bucket.
//
// Upload order: the backlog (local snapshots not yet in the bucket, e.g.
// after the store was unreachable) goes newest first: the latest state is
// off the host soonest. A snapshot whose upload failed stays local and is
// tried again on the next pass; after `max_failures` failed passes in a row
// the health of "snapshot.v1.Remote" turns NOT_SERVING until one succeeds.
//
// A killed agent's upload is recorded in `journal_dir` when it begins, and
// aborted at the next start; uploads under this cluster's folder older than
// `left_upload_age` (whoever began them) are aborted on every pass.
//
// Threading: thread-safe; one thread of its own for the passes. Ownership:
// the catalog, the metrics and `is_leader` are borrowed and must outlive the
// object.
#ifndef SNAPSHOT_AGENT_CORE_REMOTE_SYNC_H_
#define SNAPSHOT_AGENT_CORE_REMOTE_SYNC_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "age/age.h"
#include "core/catalog.h"
#include "core/failure_streak.h"
#include "core/job_metrics.h"
#include "core/retention.h"
#include "store/remote_store.h"

namespace snapshot {

inline constexpr char kRemoteHealthService[] = "snapshot.v1.Remote";

struct RemoteOptions {
  std::string cluster;  // the folder under the prefix (--remote-cluster)
  std::set<SnapshotOrigin> origins = {SnapshotOrigin::kScheduled, SnapshotOrigin::kOnDemand,
                                      SnapshotOrigin::kPreRestore};
  RetentionPolicy retention;  // of this cluster's remote snapshots
  int max_failures = 3;
  absl::Duration interval = absl::Minutes(1);  // between passes
  absl::Duration left_upload_age = absl::Hours(24);
  uint64_t max_archive_bytes = 0;  // what a download may hold (Limits)
  std::string journal_dir;         // uploads in progress (created, 0700)
  // Encryption (docs/remote.md, "Encryption"): with recipients, uploads are
  // age files (ID.snap.age) that any of them can open; identities open the
  // encrypted snapshots of the bucket for Import. An encrypted download is
  // spooled (ciphertext, as kSpoolPrefix files) in `spool_dir` first.
  std::vector<age::X25519Recipient> recipients;
  std::vector<age::X25519Identity> identities;
  std::string spool_dir;
  // --remote-verify=read: every upload is downloaded again and verified
  // (Verify); one that does not match is deleted and counts as failed.
  bool verify_after_upload = false;
  // --remote-verify-interval: every so often (0: never) the leader's agent
  // verifies one stored snapshot of this cluster, in turn (VerifyNext).
  absl::Duration verify_interval = absl::ZeroDuration();
  JobMetrics* metrics = NoJobMetrics();
};

// A snapshot in the bucket, with the catalog entry its sidecar holds.
struct RemoteEntry {
  CatalogEntry entry;
  RemoteSnapshot object;
  std::string object_sha256;  // hex, of the object as uploaded
};

class RemoteSync {
 public:
  // Aborts the uploads the journal names, and starts the passes.
  static absl::StatusOr<std::unique_ptr<RemoteSync>> Start(
      std::unique_ptr<RemoteStore> store, RemoteOptions options, Catalog* catalog,
      std::function<bool()> is_leader, std::function<void(bool)> on_health);
  ~RemoteSync();
  void Stop();  // idempotent; an upload in progress ends at its next write (and is aborted)

  // A snapshot was stored locally: run a pass soon.
  void Kick();
  // One pass now, on the calling thread, on the leader's agent only (a
  // follower's does nothing, so that listing stays one LIST per pass per
  // cluster): list, upload the backlog, apply remote retention.
  absl::Status Pass();

  // What the bucket holds, of every cluster under the prefix, newest first;
  // from a listing at most `max_age` old (a LIST when older).
  absl::StatusOr<std::vector<RemoteEntry>> List(absl::Duration max_age = absl::Seconds(10));
  // The snapshot `id` in the bucket: this cluster's, else another's.
  // NOT_FOUND when the listing (at most a second old) has none.
  absl::StatusOr<RemoteEntry> Find(const std::string& id);
  // Whether the agent holds an identity that opens encrypted objects.
  bool CanDecrypt() const { return !options_.identities.empty(); }
  // The object of `r` as stored, from `offset` (a ranged GET) into `sink`.
  absl::StatusOr<uint64_t> FetchObject(const RemoteEntry& r, uint64_t offset, ByteSink* sink);

  // Downloads a remote snapshot into the local catalog (Catalog fallback),
  // decrypting it when it is encrypted. The catalog verifies it completely
  // before it is listed. Errors: NOT_FOUND for an id the bucket does not
  // hold; FAILED_PRECONDITION for an encrypted snapshot that no identity of
  // the agent opens; DATA_LOSS for an object that is altered or truncated.
  absl::Status Import(const std::string& id);

  // Downloads a remote snapshot again (spooled in spool_dir) and checks it:
  // the object's SHA-256 against the one recorded at upload and, unless it is
  // encrypted and the agent has no identity, the whole archive (every hash)
  // against its catalog entry. DATA_LOSS when the bytes are not what was
  // uploaded; other errors of the store. Counted in the metrics.
  absl::Status Verify(const RemoteEntry& r);
  // Verifies this cluster's snapshot whose turn it is: those never verified
  // by this agent first (newest first), then the one verified longest ago.
  // Returns its id ("" when there is none). Run calls it every
  // verify_interval on the leader's agent.
  absl::StatusOr<std::string> VerifyNext();

  const std::string& cluster() const { return options_.cluster; }
  std::string Where() const { return store_->Where(); }

 private:
  RemoteSync(std::unique_ptr<RemoteStore> store, RemoteOptions options, Catalog* catalog,
             std::function<bool()> is_leader, std::function<void(bool)> on_health);
  absl::StatusOr<std::vector<RemoteEntry>> Refresh();
  absl::Status Upload(const CatalogEntry& e);
  // Spools the object of `r` (checking its SHA-256 against the sidecar's),
  // then hands `plaintext` the archive it holds, decrypted when encrypted;
  // with `plaintext` null only the object is checked.
  absl::Status WithObject(const RemoteEntry& r,
                          const std::function<absl::Status(ByteSource*)>& plaintext);
  uint64_t MaxObjectBytes() const;
  void ApplyRetention(const std::vector<RemoteEntry>& remote);
  void Run();
  std::string JournalPath(const std::string& upload_id) const;

  std::unique_ptr<RemoteStore> store_;
  const RemoteOptions options_;
  Catalog* catalog_;
  std::function<bool()> is_leader_;
  std::function<void(bool)> on_health_;

  std::mutex pass_mu_;  // one pass at a time

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                            // guarded by mu_
  std::atomic<bool> stopping_{false};            // read by uploads between parts
  bool kicked_ = false;                          // guarded by mu_
  std::map<std::string, RemoteEntry> sidecars_;  // guarded by mu_: by sidecar key
  std::vector<RemoteEntry> listed_;              // guarded by mu_
  absl::Time listed_at_ = absl::InfinitePast();  // guarded by mu_
  FailureStreak streak_;                         // guarded by pass_mu_
  std::map<std::string, absl::Time> verified_;   // guarded by pass_mu_: by archive key
  absl::Time next_verify_;                       // guarded by pass_mu_
  std::thread thread_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_REMOTE_SYNC_H_
