// The etcd cluster restore's transport between agents: a Participant
// (etcd/restore_protocol.h) for another member's agent, over its
// EtcdRestoreService (gRPC, with this agent's TLS client certificate and
// peer token).
//
// A peer that refuses this agent's credentials (UNAUTHENTICATED,
// PERMISSION_DENIED) is FAILED_PRECONDITION naming the credential: it is the
// agents' configuration to fix, not the caller's token. Other errors keep
// their code, with the peer's address in the message.
//
// Threading: a participant is used by one thread at a time.
#ifndef SNAPSHOT_AGENT_SERVER_ETCD_PEER_H_
#define SNAPSHOT_AGENT_SERVER_ETCD_PEER_H_

#include <string>

#include "etcd/restore_protocol.h"

namespace snapshot {

// How this agent reaches the other agents.
struct PeerOptions {
  // CA of the other agents' server certificates; empty: plaintext.
  std::string ca_file;
  // This agent's certificate and key, presented to peers that require
  // client certificates (mutual TLS).
  std::string cert_file, key_file;
  // An admin token of the other agents (empty: they have no token file).
  std::string token;
};

// Connects to other agents with `options`.
ParticipantFactory PeerParticipants(PeerOptions options);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_ETCD_PEER_H_
