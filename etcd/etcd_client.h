// EtcdClient: the etcd engine's connection to one etcd member over etcd's v3
// gRPC API (proto/etcd/rpc.proto): plaintext or TLS (CA, optional client
// certificate), and etcd authentication (user + password file) when enabled,
// with the "token" metadata renewed when etcd says it expired.
//
// Threading: thread-safe (gRPC stubs are; the token is behind a mutex).
// Errors, by what the agent's caller should do next:
//   UNAVAILABLE / DEADLINE_EXCEEDED  the member did not answer (retry)
//   FAILED_PRECONDITION  etcd refused the agent's credentials (fix the
//                        agent's --etcd-user/--etcd-password-file/TLS flags);
//                        never PERMISSION_DENIED, which the agent's API keeps
//                        for its own tokens
//   INTERNAL             anything else etcd answered, with its message
#ifndef SNAPSHOT_AGENT_ETCD_ETCD_CLIENT_H_
#define SNAPSHOT_AGENT_ETCD_ETCD_CLIENT_H_

#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "etcd/rpc.grpc.pb.h"

namespace snapshot {

struct EtcdClientOptions {
  // The member's client URL: "http://HOST:PORT" or "https://HOST:PORT"
  // (https needs ca_file). A bare HOST:PORT is plaintext.
  std::string endpoint = "http://127.0.0.1:2379";
  // TLS: the CA of etcd's server certificate; cert/key: a client
  // certificate when etcd requires one (--client-cert-auth).
  std::string ca_file, cert_file, key_file;
  // etcd authentication, when etcd has it enabled: the user and a file
  // whose first line is the password.
  std::string user, password_file;
};

class EtcdClient {
 public:
  // Reads the TLS and password files (errors as base/io.h) and builds the
  // channel; does not connect yet.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(
      const EtcdClientOptions& options);

  // A client of another member's endpoint with the same TLS and user.
  absl::StatusOr<std::unique_ptr<EtcdClient>> ForEndpoint(
      const std::string& endpoint) const;

  absl::StatusOr<etcdserverpb::StatusResponse> Status(absl::Time deadline);
  absl::StatusOr<etcdserverpb::MemberListResponse> MemberList(
      absl::Time deadline);

  // An open Maintenance.Snapshot stream. Next() gives the messages in
  // order; false at the end of the stream, when Finish() says how it ended.
  class SnapshotStream {
   public:
    bool Next(etcdserverpb::SnapshotResponse* msg) { return reader_->Read(msg); }
    absl::Status Finish();
    // Stops the stream early (from any thread).
    void Cancel() { ctx_.TryCancel(); }

   private:
    friend class EtcdClient;
    grpc::ClientContext ctx_;
    std::unique_ptr<grpc::ClientReader<etcdserverpb::SnapshotResponse>> reader_;
    std::string endpoint_;
  };
  absl::StatusOr<std::unique_ptr<SnapshotStream>> Snapshot();

  const std::string& endpoint() const { return options_.endpoint; }

  // The etcd status of a failed call as the agent reports it (see above).
  absl::Status FromEtcd(const grpc::Status& s, const char* what) const;

 private:
  EtcdClient(EtcdClientOptions options, std::string password,
             std::shared_ptr<grpc::Channel> channel);
  // Adds the auth token (fetching one first if needed).
  absl::Status Prepare(grpc::ClientContext* ctx, absl::Time deadline);
  // Runs a unary call, renewing the token once if etcd says it is invalid.
  template <typename Call>
  absl::Status Unary(const char* what, absl::Time deadline, Call call);

  EtcdClientOptions options_;
  std::string password_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance_;
  std::unique_ptr<etcdserverpb::Cluster::Stub> cluster_;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth_;
  std::mutex mu_;
  std::string token_;  // guarded by mu_
};

// Hex as etcdctl prints member and cluster ids.
std::string EtcdId(uint64_t id);

// "http://h:p" -> "h:p" (and whether TLS is wanted).
absl::StatusOr<std::string> EtcdTarget(const std::string& url, bool* tls);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_ETCD_ETCD_CLIENT_H_
