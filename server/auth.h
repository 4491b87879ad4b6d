// Bearer-token authentication with two roles, for the gRPC services.
//
// Token file: one token per line, "ROLE TOKEN", ROLE `read` or `admin`;
// blank lines and lines starting with '#' are ignored. `admin` may do
// everything `read` may. Tokens are compared in constant time.
//
// Threading: immutable after loading; Check() may be called concurrently.
#ifndef SNAPSHOT_AGENT_SERVER_AUTH_H_
#define SNAPSHOT_AGENT_SERVER_AUTH_H_

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace snapshot {

enum class Permission { kRead, kAdmin };

class TokenAuth {
 public:
  // INVALID_ARGUMENT naming the line for a malformed file; NOT_FOUND or
  // PERMISSION_DENIED when it cannot be read; INVALID_ARGUMENT when empty.
  static absl::StatusOr<TokenAuth> LoadFile(const std::string& path);
  static absl::StatusOr<TokenAuth> Parse(const std::string& text);

  // OK when the call's "authorization: Bearer <token>" metadata names a
  // token whose role grants `need`; UNAUTHENTICATED for a missing or unknown
  // token, PERMISSION_DENIED for a role that does not grant it.
  grpc::Status Check(const grpc::ServerContextBase& context, Permission need,
                     const char* method) const;

 private:
  struct Entry {
    std::string token;
    Permission role;
  };
  std::vector<Entry> entries_;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_AUTH_H_
