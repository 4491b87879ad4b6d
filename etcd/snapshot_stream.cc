#include "etcd/snapshot_stream.h"

#include "absl/strings/str_format.h"

namespace snapshot {

absl::Status EtcdSnapshotStream::Accept(absl::string_view blob, uint64_t remaining_bytes) {
  if (sha_seen_) {
    return absl::DataLossError("etcd's snapshot stream goes on after the database's SHA-256");
  }
  if (db_seen_ < db_size_) {
    if (blob.size() > db_size_ - db_seen_ ||
        remaining_bytes != db_size_ - db_seen_ - blob.size()) {
      return absl::DataLossError(absl::StrFormat(
          "etcd's snapshot stream is inconsistent: %d bytes with %d announced to follow, after "
          "%d of %d",
          blob.size(), remaining_bytes, db_seen_, db_size_));
    }
    db_seen_ += blob.size();
    hash_.Update(blob);
    return absl::OkStatus();
  }
  // The database is complete: this must be its SHA-256.
  if (blob.size() != kDigestBytes || remaining_bytes != 0) {
    return absl::DataLossError(absl::StrFormat(
        "etcd's snapshot stream sent %d bytes where the database's 32-byte SHA-256 belongs",
        blob.size()));
  }
  const Digest ours = hash_.Finish();
  if (blob != absl::string_view(reinterpret_cast<const char*>(ours.data()), ours.size())) {
    return absl::DataLossError(
        "etcd database hash mismatch: the snapshot etcd sent does not match the SHA-256 it "
        "sent with it; nothing was saved");
  }
  sha_seen_ = true;
  return absl::OkStatus();
}

absl::Status EtcdSnapshotStream::End() const {
  if (sha_seen_) return absl::OkStatus();
  return absl::DataLossError(absl::StrFormat(
      "etcd's snapshot stream ended after %d of %d database bytes%s: the snapshot is incomplete",
      db_seen_, db_size_, db_seen_ == db_size_ ? " and before its SHA-256" : ""));
}

}  // namespace snapshot
