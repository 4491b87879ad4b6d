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

// What identifies an etcd snapshot (meta.json field "Etcd").
struct EtcdSnapshotInfo {
  std::string cluster_id;   // "ClusterID": hex, as etcdctl prints it
  std::string member_id;    // "MemberID": hex, the member it was taken from
  std::string member_name;  // "MemberName"
  bool leader = false;      // "Leader": that member led the cluster then
  int64_t revision = 0;     // "Revision": the key-value revision (see docs)
  std::string version;      // "Version": the member's etcd version

  bool operator==(const EtcdSnapshotInfo& o) const {
    return cluster_id == o.cluster_id && member_id == o.member_id &&
           member_name == o.member_name && leader == o.leader &&
           revision == o.revision && version == o.version;
  }
};

// Names of the engines, as meta.json's "Engine" records them.
inline constexpr char kEngineEmbedded[] = "embedded";
inline constexpr char kEngineEtcd[] = "etcd";

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

  // Our extensions, written after Size and only when set (Go's decoder, and
  // so Nomad's reader, ignores fields it does not know). Empty for archives
  // of other producers (Nomad, Consul).
  // `Engine`: the engine whose state state.bin is (kEngineEmbedded,
  // kEngineEtcd).
  std::string engine;
  // `Etcd`: set when engine == kEngineEtcd.
  EtcdSnapshotInfo etcd;

  bool operator==(const SnapshotMeta& o) const {
    return version == o.version && id == o.id && index == o.index &&
           term == o.term && peers == o.peers && servers == o.servers &&
           configuration_index == o.configuration_index && size == o.size &&
           engine == o.engine && etcd == o.etcd;
  }
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_SNAPSHOT_META_H_
