#include "base/grpc_credentials.h"

#include "absl/strings/str_cat.h"
#include "base/io.h"
#include "base/status_macros.h"

namespace snapshot {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFiles(
    const TlsClientFiles& f, bool tls) {
  if (!tls && f.ca_file.empty() && f.cert_file.empty() && f.key_file.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (f.cert_file.empty() != f.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a client certificate needs both ",
                                                   f.cert_flag, " and ", f.key_flag));
  }
  grpc::SslCredentialsOptions ssl;
  if (!f.ca_file.empty()) {
    SA_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadSmallFile(f.ca_file));
  }
  if (!f.cert_file.empty()) {
    SA_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadSmallFile(f.cert_file));
    SA_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadSmallFile(f.key_file));
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace snapshot
