// The frame of every RPC of the agent: which method a call is for (recorded
// by an interceptor from gRPC's own method name, never written by a
// handler), its authorization with the role the method table gives it
// (server/methods.h; consulted whether or not tokens are configured), one
// log line and the metrics when it ends, and the one mapping from
// absl::Status to grpc::Status.
//
//   grpc::Status Svc::GetStatus(grpc::ServerContext* ctx, ...) {
//     Rpc rpc(ctx, auth);
//     if (!rpc.authorized().ok()) return rpc.Done(rpc.authorized());
//     ...
//     return rpc.Done(status);
//   }
//
// Threading: an Rpc belongs to one call; the interceptor's registry is
// thread-safe; ToGrpcStatus is a pure function.
#ifndef SNAPSHOT_AGENT_SERVER_RPC_H_
#define SNAPSHOT_AGENT_SERVER_RPC_H_

#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/auth.h"
#include "server/methods.h"

namespace snapshot {

// The one mapping from absl::Status to grpc::Status (the codes coincide).
grpc::Status ToGrpcStatus(const absl::Status& s);

// The canonical name of a status code ("DATA_LOSS").
const char* CodeName(absl::StatusCode c);

// Registered on the agent's server (grpc::ServerBuilder::
// experimental().SetInterceptorCreators): records the method of every call
// for the Rpc of its handler.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcFrameFactory();

// One call: its method, authorization and log line (method, peer, role,
// bytes, duration, code, message) and metrics.
class Rpc {
 public:
  // Authorizes the call on `ctx` (auth == nullptr: no tokens, every caller is
  // "anonymous" with every right). A call whose method the frame did not
  // record or the table does not have is refused (UNIMPLEMENTED).
  Rpc(const grpc::ServerContextBase* ctx, const Authorizer* auth);

  // The authorization's outcome: OK, UNAUTHENTICATED or PERMISSION_DENIED
  // (UNIMPLEMENTED for a method without an entry).
  const absl::Status& authorized() const { return denied_; }
  const std::string& role() const { return role_; }
  // The caller holds a token of the read role (not admin, not anonymous).
  bool read_role() const { return role_ == RoleName(Permission::kRead); }
  std::string peer() const { return ctx_->peer(); }

  // Logs the outcome, counts it in the metrics and turns it into the call's
  // status.
  grpc::Status Done(const absl::Status& s);

  // Payload bytes moved, in the method's direction.
  uint64_t bytes = 0;

 private:
  const grpc::ServerContextBase* ctx_;
  const MethodInfo* method_;
  absl::Time start_;
  std::string role_;
  absl::Status denied_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_RPC_H_
