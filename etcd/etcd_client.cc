#include "etcd/etcd_client.h"

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/grpc_credentials.h"
#include "base/io.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCreds(
    const EtcdClientOptions& o, bool tls) {
  TlsClientFiles files;
  files.ca_file = o.ca_file;
  files.cert_file = o.cert_file;
  files.key_file = o.key_file;
  files.cert_flag = "--etcd-cert";
  files.key_flag = "--etcd-key";
  return ChannelCredentialsFromFiles(files, tls);
}

}  // namespace

std::string EtcdId(uint64_t id) { return absl::StrFormat("%x", id); }

absl::StatusOr<std::string> EtcdTarget(const std::string& url, bool* tls) {
  std::string rest = url;
  *tls = false;
  if (absl::StartsWith(rest, "https://")) {
    *tls = true;
    rest = rest.substr(8);
  } else if (absl::StartsWith(rest, "http://")) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd endpoint \"", url, "\" must be http://HOST:PORT or https://HOST:PORT"));
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find(':') == std::string::npos ||
      rest.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd endpoint \"", url, "\" must be http://HOST:PORT or https://HOST:PORT"));
  }
  return rest;
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    const EtcdClientOptions& options) {
  bool tls = false;
  SA_ASSIGN_OR_RETURN(std::string target, EtcdTarget(options.endpoint, &tls));
  SA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds,
                      ChannelCreds(options, tls));
  std::string password;
  if (!options.user.empty()) {
    if (options.password_file.empty()) {
      return absl::InvalidArgumentError(
          "--etcd-user needs --etcd-password-file");
    }
    SA_ASSIGN_OR_RETURN(std::string text,
                        ReadSecretFile(options.password_file, "--etcd-password-file"));
    absl::string_view first = text;
    first = first.substr(0, first.find('\n'));
    password = std::string(absl::StripTrailingAsciiWhitespace(first));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  // A member restarting (restore, supervision) must be reachable again soon.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto channel = grpc::CreateCustomChannel(target, creds, args);
  return std::unique_ptr<EtcdClient>(
      new EtcdClient(options, std::move(password), std::move(channel)));
}

EtcdClient::EtcdClient(EtcdClientOptions options, std::string password,
                       std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      password_(std::move(password)),
      channel_(std::move(channel)),
      maintenance_(etcdserverpb::Maintenance::NewStub(channel_)),
      cluster_(etcdserverpb::Cluster::NewStub(channel_)),
      auth_(etcdserverpb::Auth::NewStub(channel_)) {}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::ForEndpoint(
    const std::string& endpoint) const {
  EtcdClientOptions o = options_;
  o.endpoint = endpoint;
  return Create(o);
}

absl::Status EtcdClient::FromEtcd(const grpc::Status& s, const char* what) const {
  if (s.ok()) return absl::OkStatus();
  const std::string where =
      absl::StrCat(what, " from etcd at ", options_.endpoint, ": ");
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat(
          where, s.error_message(), " (is the etcd member running?)"));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(absl::StrCat(where, s.error_message()));
    case grpc::StatusCode::CANCELLED:
      return absl::CancelledError(absl::StrCat(where, s.error_message()));
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return absl::FailedPreconditionError(absl::StrCat(
          where, "etcd refused the agent: ", s.error_message(),
          " (check --etcd-user, --etcd-password-file and the etcd TLS flags)"));
    default:
      return absl::InternalError(absl::StrCat(where, s.error_message()));
  }
}

absl::Status EtcdClient::Prepare(grpc::ClientContext* ctx, absl::Time deadline) {
  ctx->set_deadline(absl::ToChronoTime(deadline));
  // Wait (until the deadline) for a member that is starting or restarting:
  // gRPC's fail-fast calls keep failing for seconds after a first refused
  // connection.
  ctx->set_wait_for_ready(true);
  if (options_.user.empty()) return absl::OkStatus();
  std::string token;
  {
    std::lock_guard<std::mutex> l(mu_);
    token = token_;
  }
  if (token.empty()) {
    grpc::ClientContext actx;
    actx.set_deadline(absl::ToChronoTime(deadline));
    actx.set_wait_for_ready(true);
    etcdserverpb::AuthenticateRequest req;
    req.set_name(options_.user);
    req.set_password(password_);
    etcdserverpb::AuthenticateResponse resp;
    SA_RETURN_IF_ERROR(
        FromEtcd(auth_->Authenticate(&actx, req, &resp), "authenticating"));
    token = resp.token();
    std::lock_guard<std::mutex> l(mu_);
    token_ = token;
  }
  ctx->AddMetadata("token", token);
  return absl::OkStatus();
}

template <typename Call>
absl::Status EtcdClient::Unary(const char* what, absl::Time deadline, Call call) {
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    SA_RETURN_IF_ERROR(Prepare(&ctx, deadline));
    grpc::Status s = call(&ctx);
    // An expired simple token: fetch a new one, once.
    if (attempt == 0 && !s.ok() && !options_.user.empty() &&
        absl::StrContains(s.error_message(), "invalid auth token")) {
      std::lock_guard<std::mutex> l(mu_);
      token_.clear();
      continue;
    }
    return FromEtcd(s, what);
  }
}

absl::StatusOr<etcdserverpb::StatusResponse> EtcdClient::Status(
    absl::Time deadline) {
  etcdserverpb::StatusResponse resp;
  SA_RETURN_IF_ERROR(Unary("status", deadline, [&](grpc::ClientContext* ctx) {
    return maintenance_->Status(ctx, etcdserverpb::StatusRequest(), &resp);
  }));
  return resp;
}

absl::StatusOr<etcdserverpb::MemberListResponse> EtcdClient::MemberList(
    absl::Time deadline) {
  etcdserverpb::MemberListResponse resp;
  SA_RETURN_IF_ERROR(Unary("member list", deadline, [&](grpc::ClientContext* ctx) {
    return cluster_->MemberList(ctx, etcdserverpb::MemberListRequest(), &resp);
  }));
  return resp;
}

absl::StatusOr<std::unique_ptr<EtcdClient::SnapshotStream>> EtcdClient::Snapshot() {
  auto stream = std::make_unique<SnapshotStream>();
  stream->endpoint_ = options_.endpoint;
  // No deadline: a large database takes time; the agent's own stream
  // limits (idle, rate) end a stalled Take, which cancels this.
  SA_RETURN_IF_ERROR(Prepare(&stream->ctx_, absl::InfiniteFuture()));
  stream->reader_ =
      maintenance_->Snapshot(&stream->ctx_, etcdserverpb::SnapshotRequest());
  return stream;
}

absl::Status EtcdClient::SnapshotStream::Finish() {
  grpc::Status s = reader_->Finish();
  if (s.ok()) return absl::OkStatus();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat(
        "the snapshot stream from etcd at ", endpoint_, " broke: ",
        s.error_message()));
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("snapshot from etcd at ", endpoint_, ": ",
                                   s.error_message()));
}

}  // namespace snapshot
