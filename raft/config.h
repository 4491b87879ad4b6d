// The embedded engine's configuration and the checks made before libraft
// is touched: the peer list, addresses (libraft's TCP transport takes numeric
// IPv4 only and reports a port in use with an empty message), the data
// directory. Pure functions and plain structs; no libraft in here.
#ifndef SNAPSHOT_AGENT_RAFT_CONFIG_H_
#define SNAPSHOT_AGENT_RAFT_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/node.h"

namespace snapshot {

struct EmbeddedNodeConfig {
  // This node's id (> 0) and the host:port its Raft transport listens on.
  uint64_t id = 1;
  std::string raft_address = "127.0.0.1:7001";
  // Optional IPv4:PORT the Raft transport binds to instead of raft_address
  // (same port), e.g. "0.0.0.0:7151" in a container whose advertised
  // raft_address (a Kubernetes Service IP) is not an address of its own.
  std::string raft_bind_address;
  // This node's agent (gRPC) address, reported in Status and to clients that
  // reach a follower. Optional.
  std::string agent_address;
  // Directory of the Raft log and snapshots; created (mode 0700) if missing.
  std::string data_dir;
  // The static cluster, this node included. Empty: a single-node cluster of
  // this node alone. Every node of a cluster must be given the same list.
  std::vector<Member> peers;

  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  // Must stay above the time needed to send the largest FSM snapshot.
  unsigned install_snapshot_timeout_ms = 10000;
  // Log entries between the engine's own snapshots, and entries kept after.
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 1024;
  // Size of the Raft log's segment files (preallocated; the open one and a
  // spare exist at any time).
  size_t segment_bytes = 32 << 20;
};

// Parses a peer list "ID=RAFT_HOST:PORT[@AGENT_HOST:PORT],..." e.g.
// "1=127.0.0.1:7001@127.0.0.1:8001,2=127.0.0.1:7002@127.0.0.1:8002".
// INVALID_ARGUMENT, naming the bad item, for anything malformed or repeated.
absl::StatusOr<std::vector<Member>> ParsePeers(absl::string_view spec);

// Splits "HOST:PORT" (port 1 to 65535).
bool ParseHostPort(absl::string_view s, std::string* host, int* port);

// OK when a numeric IPv4 "HOST:PORT" can be bound now; FAILED_PRECONDITION
// naming the address when it is in use, INVALID_ARGUMENT when it is not
// numeric IPv4.
absl::Status CheckAddressFree(const std::string& address);

// Creates the data directory (mode 0700) when missing and checks that it is
// a writable directory (FAILED_PRECONDITION saying what is wrong).
absl::Status PrepareDataDir(const std::string& dir);

// Everything checked before libraft is started: the configuration
// (INVALID_ARGUMENT; an empty peer list becomes this node alone), the data
// directory (PrepareDataDir) and the address to bind (CheckAddressFree).
absl::Status PrepareToStart(EmbeddedNodeConfig* config);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_CONFIG_H_
