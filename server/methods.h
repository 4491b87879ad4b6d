// The one table of the agent's RPC methods: for each, by its full gRPC name,
// the role it needs, which way its payload bytes go, and which operation it
// is. Authorization, the per-call log line and the metrics all read it
// (server/rpc.h); a test checks it against the services' proto descriptors
// in both directions, so a method cannot be added without an entry.
//
// Threading: immutable.
#ifndef SNAPSHOT_AGENT_SERVER_METHODS_H_
#define SNAPSHOT_AGENT_SERVER_METHODS_H_

#include <vector>

#include "absl/strings/string_view.h"
#include "server/auth.h"

namespace snapshot {

// Which way an RPC's payload bytes go, seen from the agent.
enum class Direction { kIn, kOut };

struct MethodInfo {
  const char* full_name;  // "/snapshot.v1.SnapshotService/TakeSnapshot"
  const char* name;       // "TakeSnapshot": logs and metrics
  Permission role;
  Direction bytes;
  const char* operation;  // "take", "verify", "restore", "fetch"; or nullptr
};

// The entry of a full method name; nullptr for a method the table does not
// have (refused: fail closed).
const MethodInfo* FindMethod(absl::string_view full_name);

// Every entry.
const std::vector<MethodInfo>& AllMethods();

// The proto services whose methods the table covers.
const std::vector<const char*>& TableServices();

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_METHODS_H_
