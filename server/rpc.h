// One RPC of the agent, as every service handles it: authorization through
// the method -> role table (server/auth.h), one log line with the outcome,
// and the one mapping from absl::Status to grpc::Status.
//
// Threading: an Rpc belongs to one call; ToGrpcStatus is a pure function.
#ifndef SNAPSHOT_AGENT_SERVER_RPC_H_
#define SNAPSHOT_AGENT_SERVER_RPC_H_

#include <cstdint>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/auth.h"

namespace snapshot {

// The one mapping from absl::Status to grpc::Status (the codes coincide).
grpc::Status ToGrpcStatus(const absl::Status& s);

// The canonical name of a status code ("DATA_LOSS").
const char* CodeName(absl::StatusCode c);

// One call: its authorization and its log line (method, peer, role, bytes,
// duration, code, message).
class Rpc {
 public:
  // Authorizes the call (auth == nullptr: no authentication).
  Rpc(const grpc::ServerContextBase* ctx, const char* method,
      const Authorizer* auth);

  // The authorization's outcome: OK, UNAUTHENTICATED or PERMISSION_DENIED.
  const absl::Status& authorized() const { return denied_; }
  const std::string& role() const { return role_; }
  const char* method() const { return method_; }
  std::string peer() const { return ctx_->peer(); }

  // Logs the outcome and turns it into the call's status.
  grpc::Status Done(const absl::Status& s);

  uint64_t bytes = 0;

 private:
  const grpc::ServerContextBase* ctx_;
  const char* method_;
  absl::Time start_;
  std::string role_;
  absl::Status denied_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_RPC_H_
