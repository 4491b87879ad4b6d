// The agent's catalog of stored snapshots: a directory of finished archives,
// each with a sidecar file holding its metadata, so that listing needs no
// archive to be opened.
//
//   DIR/LOCK                           held while the agent runs (DirLock)
//   DIR/<id>.snap                      the archive, mode 0600
//   DIR/<id>.snap.age                  ... or the archive encrypted at rest
//                                      (age, with CatalogEncryption)
//   DIR/<id>.json                      its catalog entry (the index)
//   DIR/.<anything>.part               an archive being written
//
// Ids sort by creation time and say what they are:
// "20261126T130501.123Z-i1234-scheduled" (UTC time, the snapshot's log index,
// the origin; "-2", "-3"... in the rare case of a clash).
//
// Writing a snapshot (Create): the archive goes to a .part file, is fsynced,
// read back and verified completely (every hash; or, with
// ReadBack::kChecksum, only hashed again and compared with the checksum
// computed as it was written), renamed to <id>.snap; then
// the sidecar is written the same way (tmp, fsync, rename) and the directory
// fsynced. A crash at any point leaves either nothing, or a .part (removed at
// the next Open), or an archive whose sidecar is missing (rebuilt at Open
// from the archive itself: the sidecars are an index that the archives alone
// can rebuild). A sidecar without its archive is removed.
//
// Snapshots in use — a fetch reading one, a restore applying one — are
// pinned (Pin): Delete refuses them and retention keeps them.
//
// Encryption at rest (--encrypt-local): with CatalogEncryption's recipients,
// new archives are written as age files (the read-back decrypts and verifies
// them); with its identities, encrypted archives can be read (Pin::Open),
// and their sidecars rebuilt. Plain archives already stored stay readable.
// Entries describe the archive inside: archive_size and checksum are the
// plaintext archive's, as a fetch or a restore sees it.
//
// Threading: thread-safe; Create may run in several threads at once.
// Errors: NOT_FOUND for an unknown id; FAILED_PRECONDITION for a pinned one;
// file errors as base/io.h's ErrnoStatus (RESOURCE_EXHAUSTED for a full disk).
#ifndef SNAPSHOT_AGENT_CORE_CATALOG_H_
#define SNAPSHOT_AGENT_CORE_CATALOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "age/age.h"
#include "base/atomic_file.h"
#include "base/io.h"
#include "core/retention.h"
#include "core/snapshot_ops.h"

namespace snapshot {

enum class SnapshotOrigin { kScheduled, kOnDemand, kPreRestore };

// How much of a new archive is read back from the disk before it is
// committed: all of it verified (every hash and the state's format), or its
// bytes hashed and compared with the checksum computed while writing them —
// which finds what the disk changed or lost at a fraction of the cost, but
// not a fault of the writer itself.
enum class ReadBack { kVerify, kChecksum };
const char* OriginName(SnapshotOrigin o);  // "scheduled", "on-demand", "pre-restore"
// The inverse of OriginName; INVALID_ARGUMENT for anything else.
absl::StatusOr<SnapshotOrigin> ParseOrigin(absl::string_view s);

struct CatalogEntry {
  std::string id;
  absl::Time created;
  SnapshotOrigin origin = SnapshotOrigin::kOnDemand;
  SnapshotMeta meta;  // meta.json of the archive
  uint64_t archive_size = 0;
  std::string checksum;      // "sha-256=<base64>" of the archive
  std::string state_sha256;  // hex, of state.bin
  // Stored encrypted at rest (DIR/<id>.snap.age, of `stored_size` bytes).
  bool encrypted = false;
  uint64_t stored_size = 0;  // the file's size (archive_size when not encrypted)
};

// Encryption of the catalog's files at rest.
struct CatalogEncryption {
  std::vector<age::X25519Recipient> recipients;  // empty: new archives are plain
  std::vector<age::X25519Identity> identities;   // open encrypted archives
};

class Catalog {
 public:
  // Opens (creating, mode 0700) and locks `dir`, removes .part files, and
  // reconciles sidecars with archives (see above). An archive that cannot be
  // read back is left in place, out of the catalog, and reported in the log.
  // `env` (borrowed; tests inject faults) writes the archives.
  static absl::StatusOr<std::unique_ptr<Catalog>> Open(const std::string& dir,
                                                       CatalogEncryption encryption = {},
                                                       Env* env = Env::Default());

  // Takes a snapshot of `node` into the catalog (see above); the snapshot's
  // capture waits at most until `deadline`. When `*cancel` becomes true the
  // write stops (CANCELLED) and leaves nothing.
  absl::StatusOr<CatalogEntry> Create(RaftNode* node, const TakeOptions& options,
                                      SnapshotOrigin origin, absl::Time deadline,
                                      const std::atomic<bool>* cancel = nullptr,
                                      ReadBack read_back = ReadBack::kVerify);

  // Every entry, newest first.
  std::vector<CatalogEntry> List() const;
  absl::StatusOr<CatalogEntry> Get(const std::string& id) const;
  uint64_t TotalBytes() const;

  // Keeps `id` from being deleted while the handle lives.
  class Pin {
   public:
    ~Pin();
    const CatalogEntry& entry() const { return entry_; }
    // The file as stored (an age file when entry().encrypted).
    const std::string& path() const { return path_; }
    // The archive: the file, decrypted when it is encrypted (each chunk
    // authenticated; DATA_LOSS when altered, FAILED_PRECONDITION without a
    // key that opens it).
    absl::StatusOr<std::unique_ptr<ByteSource>> Open() const;

   private:
    friend class Catalog;
    Pin(Catalog* c, CatalogEntry e, std::string path)
        : catalog_(c), entry_(std::move(e)), path_(std::move(path)) {}
    Catalog* catalog_;
    CatalogEntry entry_;
    std::string path_;
  };
  // Pins a stored snapshot. One that is not here is asked of the fallback
  // (SetFallback), which may Import it, e.g. from the remote store.
  absl::StatusOr<std::unique_ptr<Pin>> Acquire(const std::string& id);

  // Stores a snapshot made elsewhere under its own entry: the archive that
  // `write` produces goes to a .part file, is fsynced, read back and
  // verified (every hash, and the entry's checksums), then renamed as in
  // Create. DATA_LOSS when the bytes do not match the entry. An id already
  // here is kept and returned as is.
  absl::StatusOr<CatalogEntry> Import(const CatalogEntry& entry,
                                      const std::function<absl::Status(ByteSink*)>& write);

  // Where Acquire looks for a snapshot that is not here (called without the
  // catalog's lock held; NOT_FOUND when it has none either).
  void SetFallback(std::function<absl::Status(const std::string& id)> fetch);

  absl::Status Delete(const std::string& id);

  // Deletes what `policy` does not keep (core/retention.h); pinned
  // snapshots and the newest stay. Returns the ids deleted.
  std::vector<std::string> ApplyRetention(const RetentionPolicy& policy);

  const std::string& dir() const { return dir_; }

 private:
  Catalog(std::string dir, std::unique_ptr<DirLock> lock, CatalogEncryption encryption, Env* env)
      : dir_(std::move(dir)), lock_(std::move(lock)), encryption_(std::move(encryption)),
        env_(env) {}
  std::string ArchivePath(const std::string& id, bool encrypted) const;
  // Writes an archive into `file` through `write`, encrypted when the
  // catalog encrypts, then reads it back and verifies it; fills `e`'s sizes,
  // checksums and meta.
  // Writes the archive that `write` produces into `file` (encrypted when the
  // catalog encrypts), fsyncs it and reads it back from `part` completely;
  // returns what was read (with kChecksum: its size and checksum only), and
  // sets e's `encrypted` and `stored_size`.
  absl::StatusOr<ArchiveInfo> WriteAndReadBack(const std::function<absl::Status(ByteSink*)>& write,
                                               AtomicFile* file, const std::string& part,
                                               CatalogEntry* e,
                                               ReadBack read_back = ReadBack::kVerify);
  std::string SidecarPath(const std::string& id) const;
  absl::Status WriteSidecar(const CatalogEntry& e);
  absl::Status DeleteLocked(const std::string& id);

  const std::string dir_;
  std::unique_ptr<DirLock> lock_;
  const CatalogEncryption encryption_;
  Env* const env_;
  mutable std::mutex mu_;
  std::map<std::string, CatalogEntry> entries_;  // guarded by mu_
  std::map<std::string, int> pins_;              // guarded by mu_
  std::function<absl::Status(const std::string&)> fallback_;  // set before use
};

// The sidecar's JSON form (also what snapshotctl prints with --json).
std::string CatalogEntryJson(const CatalogEntry& e);
absl::StatusOr<CatalogEntry> ParseCatalogEntryJson(absl::string_view json);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_CATALOG_H_
