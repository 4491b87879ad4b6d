// SnapshotMeta: the metadata of a Raft snapshot (what an archive's meta.json
// holds), shared by the archive codec, the engines and the agent. Field names
// and meanings follow hashicorp/raft's SnapshotMeta; archive/meta.h encodes
// and parses the JSON form.
//
// Threading: plain value types.
#ifndef SNAPSHOT_AGENT_BASE_SNAPSHOT_META_H_
#define SNAPSHOT_AGENT_BASE_SNAPSHOT_META_H_

#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_SNAPSHOT_META_H_
