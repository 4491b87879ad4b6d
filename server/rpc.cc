#include "server/rpc.h"

#include "server/metrics.h"

#include <vector>

#include "base/log.h"

namespace snapshot {

const char* CodeName(absl::StatusCode c) {
  static const char* kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

Rpc::Rpc(const grpc::ServerContextBase* ctx, const char* method,
         const Authorizer* auth)
    : ctx_(ctx), method_(method), start_(absl::Now()) {
  if (auth == nullptr) {
    role_ = "anonymous";
    return;
  }
  absl::StatusOr<std::string> role = auth->Authorize(*ctx, method);
  if (role.ok()) {
    role_ = *role;
  } else {
    denied_ = role.status();
    role_ = "none";
  }
}

grpc::Status Rpc::Done(const absl::Status& s) {
  std::vector<LogField> f = {
      {"method", method_},
      {"peer", ctx_->peer()},
      {"role", role_},
      {"bytes", bytes},
      {"duration_ms", absl::ToDoubleMilliseconds(absl::Now() - start_)},
      {"code", CodeName(s.code())}};
  if (!s.ok()) f.emplace_back("error", s.message());
  Log(LogLevel::kInfo, "rpc", f);
  Metrics::Get().Rpc(method_, CodeName(s.code()), bytes, absl::Now() - start_);
  return ToGrpcStatus(s);
}

}  // namespace snapshot
