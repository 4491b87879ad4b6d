// The rules of etcd's Maintenance.Snapshot stream, without gRPC: messages of
// database bytes (blob, and remaining_bytes announcing what follows; the
// first message gives the database's size), then one message holding the
// database's 32-byte SHA-256, then the end. EtcdSnapshotStream checks each
// message as it comes and the hash at the end; anything else — a message
// that contradicts the size, a short stream, a wrong or missing hash, a
// message after the hash — is DATA_LOSS, so the snapshot being written
// fails.
//
// Threading: one thread at a time.
#ifndef SNAPSHOT_AGENT_ETCD_SNAPSHOT_STREAM_H_
#define SNAPSHOT_AGENT_ETCD_SNAPSHOT_STREAM_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/sha256.h"

namespace snapshot {

class EtcdSnapshotStream {
 public:
  static constexpr size_t kDigestBytes = 32;

  // The first message's blob size and remaining_bytes.
  EtcdSnapshotStream(uint64_t first_blob, uint64_t first_remaining)
      : db_size_(first_blob + first_remaining) {}

  // The bytes of state.bin: the database and its SHA-256 message.
  uint64_t state_size() const { return db_size_ + kDigestBytes; }

  // A message (the first one too): OK when it fits; its blob is then part of
  // state.bin.
  absl::Status Accept(absl::string_view blob, uint64_t remaining_bytes);
  // The stream ended: OK only after the whole database and its hash.
  absl::Status End() const;
  bool complete() const { return sha_seen_; }

 private:
  const uint64_t db_size_;
  uint64_t db_seen_ = 0;
  Sha256 hash_;
  bool sha_seen_ = false;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ETCD_SNAPSHOT_STREAM_H_
