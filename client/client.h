// SnapshotClient: the reusable C++ client of snapshot-agent, used by
// snapshotctl and usable by backup orchestrators.
//
//   ClientOptions o;
//   o.address = "10.0.0.5:7150";
//   o.ca_file = "ca.crt"; o.token = "...";
//   auto client = SnapshotClient::Connect(o);
//   auto saved = (*client)->Save("backup.snap", {}, nullptr);
//
// Save writes FILE.part, checks the trailer's size and checksum against the
// bytes received, fsyncs, and renames to FILE: on any failure no FILE is
// created or changed and no FILE.part is left. SaveTo streams into any sink
// (e.g. stdout); its bytes count only if it returns OK. Connecting is retried
// with backoff (Connect); an RPC is never retried blindly — least of all a
// restore.
//
// Threading: a client may be used from several threads at once (gRPC stubs
// are thread-safe); a single call is not. CancelAll may be called from any
// thread (e.g. a signal handler thread). Errors: absl::Status with the
// agent's gRPC code carried over (see docs/api.md). Local file problems come
// from base/io.h's ErrnoStatus, so IsLocalFileError() tells them apart from
// the agent's answers; TLS handshake failures are UNAVAILABLE with
// IsTlsError() true and the handshake's reason in the message.
#ifndef SNAPSHOT_AGENT_CLIENT_CLIENT_H_
#define SNAPSHOT_AGENT_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "age/age.h"
#include "base/io.h"
#include "base/snapshot_meta.h"
#include "proto/snapshot/v1/snapshot.grpc.pb.h"

namespace snapshot {

struct ClientOptions {
  std::string address = "127.0.0.1:7150";
  // TLS: the CA that signed the agent's certificate; with cert/key, the
  // client certificate for mutual TLS. All empty: plaintext.
  std::string ca_file, cert_file, key_file;
  // Bearer token sent as "authorization: Bearer <token>"; empty: none.
  std::string token;
  // Connect: attempts and the wait for each (backoff doubles from 200 ms).
  // A failed TLS handshake is not retried.
  int connect_attempts = 3;
  absl::Duration connect_timeout = absl::Seconds(2);
  // Deadline of unary calls (status, key-value). Streams have none: large
  // snapshots take time; the agent ends idle or too slow ones.
  absl::Duration call_timeout = absl::Seconds(30);
};

// Called as bytes move: done so far and the total when known (0 if not).
// For Save, both count bytes of state (meta.json's Size), measured by
// decompressing the archive as it arrives (only when a ProgressFn is given).
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

struct SaveOptions {
  uint32_t chunk_size = 0;               // 0: the agent's default (1 MiB)
  std::optional<int> compression_level;  // unset: the agent's default
  bool fast = false;                     // fast mode (not with a level)
  bool allow_stale = false;
  // Replace an existing file (atomically); otherwise ALREADY_EXISTS.
  bool overwrite = false;
  // Encrypt what is written (Save and SaveTo) into an age file that these
  // recipients, or this passphrase, open (`age -d` does). The trailer check
  // covers the archive as received, before encryption.
  std::vector<age::X25519Recipient> encrypt_to;
  std::string passphrase;
};

// The metadata the agent sent, in the codec's shape (base/snapshot_meta.h).
SnapshotMeta MetaFromProto(const v1::SnapshotMetadata& m);

struct SaveResult {
  v1::SnapshotMetadata metadata;
  uint64_t archive_size = 0;
  std::string checksum;
};

class SnapshotClient {
 public:
  // Builds a channel from `options` and waits until it is connected,
  // retrying with backoff; UNAVAILABLE naming the address if it never is
  // (IsTlsError when the TLS handshake failed). INVALID_ARGUMENT / NOT_FOUND
  // for unusable TLS files.
  static absl::StatusOr<std::unique_ptr<SnapshotClient>> Connect(
      const ClientOptions& options);

  // Takes ownership of the stubs: for tests with the generated mocks, or for
  // channels built by the caller.
  SnapshotClient(std::unique_ptr<v1::SnapshotService::StubInterface> snapshots,
                 std::unique_ptr<v1::KeyValueService::StubInterface> kv,
                 ClientOptions options);

  // Takes a snapshot into `path` (see the header comment).
  absl::StatusOr<SaveResult> Save(const std::string& path,
                                  const SaveOptions& options,
                                  const ProgressFn& progress);
  // Takes a snapshot into `out` (borrowed). `out` receives the archive as it
  // arrives; it is complete and intact only if this returns OK (the trailer
  // check), so a consumer must discard it otherwise.
  absl::StatusOr<SaveResult> SaveTo(ByteSink* out, const SaveOptions& options,
                                    const ProgressFn& progress);

  // Streams an archive to the agent for verification. `total` (0: unknown)
  // is for progress only.
  absl::StatusOr<v1::VerifySnapshotResponse> Verify(ByteSource* archive,
                                                    uint64_t total,
                                                    const ProgressFn& progress);
  absl::StatusOr<v1::VerifySnapshotResponse> Verify(const std::string& path,
                                                    const ProgressFn& progress);

  // Restores the cluster from an archive. The archive's checksum, computed
  // while sending, goes as the last message, so that the agent refuses an
  // archive that changed on the way before it applies anything.
  absl::StatusOr<v1::RestoreSnapshotResponse> Restore(
      ByteSource* archive, uint64_t total, const ProgressFn& progress);
  absl::StatusOr<v1::RestoreSnapshotResponse> Restore(
      const std::string& path, const ProgressFn& progress);

  // Restores the cluster from a snapshot of the agent's catalog (no upload).
  absl::StatusOr<v1::RestoreSnapshotResponse> RestoreStored(const std::string& id);

  // The agent's catalog.
  absl::StatusOr<v1::ListSnapshotsResponse> ListSnapshots();
  absl::StatusOr<v1::CatalogEntry> CreateSnapshot();
  absl::Status DeleteSnapshot(const std::string& id);
  // Downloads stored snapshot `id` into `path`, through PATH.part, which an
  // interrupted download leaves behind. With `resume`, an existing PATH.part
  // is continued from its length (its bytes are trusted only as far as the
  // final check: the whole file must match the agent's trailer, size and
  // SHA-256, or DATA_LOSS and the .part is removed); without, it is started
  // over. ALREADY_EXISTS when `path` exists and not `overwrite`.
  absl::StatusOr<v1::CatalogEntry> Fetch(const std::string& id, const std::string& path,
                                         bool resume, bool overwrite,
                                         const ProgressFn& progress);

  absl::StatusOr<v1::GetStatusResponse> Status();
  absl::StatusOr<uint64_t> Put(const std::string& key, const std::string& value);
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key,
                                                 bool allow_stale);
  absl::StatusOr<uint64_t> Delete(const std::string& key);
  // Calls `each` for every entry whose key starts with `prefix`, in key
  // order, following the agent's pages, until `limit` entries (0: all) or
  // until `each` returns false. Pages are read at different moments (not a
  // snapshot).
  absl::Status List(
      const std::string& prefix, uint64_t limit, bool allow_stale,
      const std::function<bool(const std::string& key,
                               const std::string& value)>& each);

  // Cancels every call in progress on this client (they end with
  // CANCELLED; Save removes its FILE.part), and every later one.
  void CancelAll();

 private:
  // A call's context, registered for CancelAll while it lives.
  class Call;
  void Prepare(grpc::ClientContext* ctx, bool unary) const;
  std::unique_ptr<v1::SnapshotService::StubInterface> snapshots_;
  std::unique_ptr<v1::KeyValueService::StubInterface> kv_;
  ClientOptions options_;
  std::mutex mu_;
  std::set<grpc::ClientContext*> live_;  // guarded by mu_
  bool cancelled_ = false;               // guarded by mu_
};

// The gRPC status of a call as an absl::Status (codes coincide), with the
// agent's address in the message when the agent could not be reached.
absl::Status FromGrpc(const grpc::Status& s, const std::string& address);

// True for a failed TLS handshake reported by Connect.
bool IsTlsError(const absl::Status& s);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CLIENT_CLIENT_H_
