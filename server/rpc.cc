#include "server/rpc.h"

#include <mutex>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "server/metrics.h"

namespace snapshot {
namespace {

// Which method each live call is for, by its server context.
class MethodRegistry {
 public:
  static MethodRegistry& Get() {
    static MethodRegistry* r = new MethodRegistry;
    return *r;
  }
  void Add(const grpc::ServerContextBase* ctx, const MethodInfo* m) {
    std::lock_guard<std::mutex> l(mu_);
    calls_[ctx] = m;
  }
  void Remove(const grpc::ServerContextBase* ctx) {
    std::lock_guard<std::mutex> l(mu_);
    calls_.erase(ctx);
  }
  // nullptr when the call was not recorded or its method has no entry.
  const MethodInfo* Find(const grpc::ServerContextBase* ctx) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = calls_.find(ctx);
    return it == calls_.end() ? nullptr : it->second;
  }

 private:
  std::mutex mu_;
  std::unordered_map<const grpc::ServerContextBase*, const MethodInfo*> calls_;
};

// Lives as long as its call's context: created when gRPC matches the call to
// a method, destroyed with the context.
class FrameInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit FrameInterceptor(grpc::experimental::ServerRpcInfo* info)
      : ctx_(info->server_context()) {
    MethodRegistry::Get().Add(ctx_, FindMethod(info->method()));
  }
  ~FrameInterceptor() override { MethodRegistry::Get().Remove(ctx_); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  const grpc::ServerContextBase* ctx_;
};

class FrameFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new FrameInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcFrameFactory() {
  return std::make_unique<FrameFactory>();
}

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

Rpc::Rpc(const grpc::ServerContextBase* ctx, const Authorizer* auth)
    : ctx_(ctx), method_(MethodRegistry::Get().Find(ctx)), start_(absl::Now()) {
  role_ = "none";
  if (method_ == nullptr) {
    denied_ = absl::UnimplementedError(
        "this method has no entry in the agent's method table (server/methods.h): refused");
    return;
  }
  if (auth == nullptr) {
    role_ = "anonymous";
    return;
  }
  absl::StatusOr<std::string> role = auth->Authorize(*ctx, method_->role, method_->name);
  if (role.ok()) {
    role_ = *role;
  } else {
    denied_ = role.status();
  }
}

grpc::Status Rpc::Done(const absl::Status& s) {
  const char* name = method_ != nullptr ? method_->name : "unknown";
  std::vector<LogField> f = {
      {"method", name},
      {"peer", ctx_->peer()},
      {"role", role_},
      {"bytes", bytes},
      {"duration_ms", absl::ToDoubleMilliseconds(absl::Now() - start_)},
      {"code", CodeName(s.code())}};
  if (!s.ok()) f.emplace_back("error", s.message());
  Log(LogLevel::kInfo, "rpc", f);
  if (method_ != nullptr) {
    Metrics::Get().Rpc(*method_, CodeName(s.code()), bytes, absl::Now() - start_);
  }
  return ToGrpcStatus(s);
}

}  // namespace snapshot
