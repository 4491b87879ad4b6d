// SnapshotMeta: the Raft snapshot metadata stored as `meta.json` in an archive,
// with hashicorp/raft's field names and JSON types, so that archives written by
// Nomad and Consul read back and ours read in their tools.
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

namespace snapshot {

// One member of the Raft configuration (hashicorp/raft `raft.Server`).
struct Server {
  // 0 = Voter, 1 = Nonvoter, 2 = Staging (hashicorp/raft ServerSuffrage).
  int64_t suffrage = 0;
  std::string id;
  std::string address;

  bool operator==(const Server& o) const {
    return suffrage == o.suffrage && id == o.id && address == o.address;
  }
};

struct SnapshotMeta {
  // `Version`: snapshot format version of the producer (hashicorp/raft uses 1).
  int64_t version = 1;
  // `ID`: opaque snapshot identifier, e.g. "2-18-1795640819402".
  std::string id;
  // `Index`, `Term`: the last log entry contained in the snapshot.
  uint64_t index = 0;
  uint64_t term = 0;
  // `Peers`: legacy peer list as raw bytes (base64 in JSON); null when absent.
  std::string peers;
  // `Configuration.Servers`: null in JSON when empty.
  std::vector<Server> servers;
  // `ConfigurationIndex`: log index of the configuration.
  uint64_t configuration_index = 0;
  // `Size`: length of state.bin in bytes.
  uint64_t size = 0;

  bool operator==(const SnapshotMeta& o) const {
    return version == o.version && id == o.id && index == o.index &&
           term == o.term && peers == o.peers && servers == o.servers &&
           configuration_index == o.configuration_index && size == o.size;
  }
};

// Encodes `meta` as one line of compact JSON plus "\n", with fields in
// hashicorp/raft's order (Version, ID, Index, Term, Peers, Configuration,
// ConfigurationIndex, Size), as Go's encoding/json writes them.
absl::StatusOr<std::string> EncodeMetaJson(const SnapshotMeta& meta);

// Parses meta.json. Version, ID, Index, Term and Size are required; Peers,
// Configuration and ConfigurationIndex may be absent or null; unknown fields
// are ignored (forward compatibility, as Go does). Any type mismatch or
// out-of-range number is DATA_LOSS naming the field.
absl::StatusOr<SnapshotMeta> ParseMetaJson(absl::string_view json);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ARCHIVE_META_H_
