// Server TLS whose certificate, key and client CA can be replaced while the
// agent runs (SIGHUP), without dropping connections or the Raft node.
//
//   auto tls = ReloadableTls::Load({"server.crt", "server.key", "ca.crt"});
//   builder.AddListeningPort(addr, (*tls)->Credentials());
//   ...
//   auto changed = (*tls)->Reload();   // on SIGHUP
//
// Loading checks what a handshake would find out too late: the files are
// PEM, the key belongs to the certificate. gRPC asks for the current
// configuration before each new handshake (its certificate-config fetcher),
// so a successful Reload applies to connections made from then on; existing
// connections keep their session. A failed Reload changes nothing.
//
// Threading: Reload may run concurrently with handshakes. Ownership: the
// ReloadableTls must outlive every server built with its credentials.
// Errors: INVALID_ARGUMENT for unusable files (naming the file and why),
// NOT_FOUND / FAILED_PRECONDITION when a file cannot be read.
#ifndef SNAPSHOT_AGENT_SERVER_TLS_H_
#define SNAPSHOT_AGENT_SERVER_TLS_H_

#include <memory>
#include <mutex>
#include <string>

#include <grpc/grpc_security.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace snapshot {

struct TlsFiles {
  std::string cert;       // certificate chain (PEM)
  std::string key;        // private key (PEM)
  std::string client_ca;  // optional: require client certificates signed by it
};

class ReloadableTls {
 public:
  static absl::StatusOr<std::unique_ptr<ReloadableTls>> Load(TlsFiles files);
  ~ReloadableTls();

  // Server credentials that use the current certificates at each handshake.
  std::shared_ptr<grpc::ServerCredentials> Credentials();

  // Reads the files again; on success returns what changed (subjects, expiry
  // and SHA-256 fingerprints of the old and new certificates, client CA).
  absl::StatusOr<std::string> Reload();

  // Subject, expiry and fingerprint of the certificate in use.
  std::string Describe() const;

  struct Pem {
    std::string cert, key, client_ca;
    std::string description;  // of the leaf certificate
  };

 private:
  explicit ReloadableTls(TlsFiles files) : files_(std::move(files)) {}
  // gRPC's certificate-config fetcher (user_data is the ReloadableTls).
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* user_data, grpc_ssl_server_certificate_config** config);

  const TlsFiles files_;
  mutable std::mutex mu_;
  Pem current_;   // guarded by mu_
  bool pending_ = true;  // guarded by mu_: gRPC has not seen current_ yet
  std::shared_ptr<grpc::ServerCredentials> creds_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_TLS_H_
