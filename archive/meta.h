// meta.json: the Raft snapshot metadata (base/snapshot_meta.h) as an archive
// stores it, with hashicorp/raft's field names and JSON types, so that
// archives written by Nomad and Consul read back and ours read in their tools.
//
// Threading: plain value type. Errors: ParseMetaJson returns DATA_LOSS for a
// document that is not valid metadata; EncodeMetaJson returns INVALID_ARGUMENT
// for strings that are not valid UTF-8.
#ifndef SNAPSHOT_AGENT_ARCHIVE_META_H_
#define SNAPSHOT_AGENT_ARCHIVE_META_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/snapshot_meta.h"

namespace snapshot {

// Encodes `meta` as one line of compact JSON plus "\n", with fields in
// hashicorp/raft's order (Version, ID, Index, Term, Peers, Configuration,
// ConfigurationIndex, Size), as Go's encoding/json writes them, followed by
// our extensions when set (Engine, Etcd).
absl::StatusOr<std::string> EncodeMetaJson(const SnapshotMeta& meta);

// Parses meta.json. Version, ID, Index, Term and Size are required; Peers,
// Configuration and ConfigurationIndex may be absent or null; unknown fields
// are ignored (forward compatibility, as Go does). Any type mismatch or
// out-of-range number is DATA_LOSS naming the field.
absl::StatusOr<SnapshotMeta> ParseMetaJson(absl::string_view json);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_META_H_
