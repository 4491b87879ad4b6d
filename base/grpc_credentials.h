// ChannelCredentialsFromFiles: the one loader of client TLS credentials from
// PEM files, for every gRPC client of the agent and the client library (the
// agent's calls to etcd and to peer agents, snapshotctl's to an agent).
//
// Threading: a pure function (reads the files each call). Errors:
// INVALID_ARGUMENT when only one of the certificate and the key is given
// (naming the two flags); file errors as ReadSmallFile (base/io.h).
#ifndef SNAPSHOT_AGENT_BASE_GRPC_CREDENTIALS_H_
#define SNAPSHOT_AGENT_BASE_GRPC_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace snapshot {

struct TlsClientFiles {
  std::string ca_file;    // roots to verify the server; empty: the system's
  std::string cert_file;  // client certificate (mutual TLS); with key_file
  std::string key_file;
  // How the flags are called, for messages ("--cert", "--key").
  absl::string_view cert_flag = "--cert";
  absl::string_view key_flag = "--key";
};

// TLS when `tls` is set or any file is given; insecure (plain TCP) otherwise.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFiles(
    const TlsClientFiles& files, bool tls = false);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_GRPC_CREDENTIALS_H_
