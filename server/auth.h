// Bearer-token authentication with two roles (which RPC needs which role is
// the method table's: server/methods.h).
//
// Token file: one token per line, "ROLE TOKEN", ROLE `read` or `admin`;
// blank lines and lines starting with '#' are ignored. `admin` may do
// everything `read` may. Tokens are compared in constant time. The file must
// not be readable by group or others (as ssh insists for private keys): such
// a file is refused, since its tokens may already have leaked.
//
// Threading: TokenAuth is immutable. Authorizer::Authorize may be called
// concurrently with itself and with Reload.
#ifndef SNAPSHOT_AGENT_SERVER_AUTH_H_
#define SNAPSHOT_AGENT_SERVER_AUTH_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace snapshot {

enum class Permission { kRead, kAdmin };

const char* RoleName(Permission p);  // "read", "admin"

class TokenAuth {
 public:
  // Reads and parses the file. FAILED_PRECONDITION when it is readable by
  // group or others; NOT_FOUND when missing; INVALID_ARGUMENT naming the line
  // for a malformed file or when it holds no token.
  static absl::StatusOr<TokenAuth> LoadFile(const std::string& path);
  static absl::StatusOr<TokenAuth> Parse(const std::string& text);

  // The role of the call's "authorization: Bearer <token>" metadata if it
  // grants `need`; UNAUTHENTICATED for a missing or unknown token,
  // PERMISSION_DENIED for a role that does not grant it.
  absl::StatusOr<Permission> Check(const grpc::ServerContextBase& context,
                                   Permission need,
                                   absl::string_view method) const;

  size_t admin_tokens() const;
  // The first admin token (empty when there is none).
  std::string FirstAdminToken() const;
  size_t read_tokens() const;

 private:
  friend class Authorizer;
  struct Entry {
    std::string token;
    Permission role;
  };
  std::vector<Entry> entries_;
};

// The agent's authentication: no tokens at all (every caller is admin), or a
// token file that SIGHUP may reload.
class Authorizer {
 public:
  // No authentication.
  Authorizer() = default;
  // Loads `token_file` (errors as TokenAuth::LoadFile).
  static absl::StatusOr<std::unique_ptr<Authorizer>> FromFile(
      const std::string& token_file);

  // The caller's role name ("admin", "read", or "anonymous" without a token
  // file) when it has the role `need` that `method` (its name, for messages)
  // needs; the error otherwise.
  absl::StatusOr<std::string> Authorize(const grpc::ServerContextBase& context,
                                        Permission need, absl::string_view method) const;

  // Reads the token file again. On success the new tokens apply to calls
  // that start from now on, and the result says what changed; on error the
  // old tokens stay. A no-op (OK, "no token file") without a token file.
  absl::StatusOr<std::string> Reload();

 private:
  std::string token_file_;
  mutable std::mutex mu_;
  std::shared_ptr<const TokenAuth> tokens_;  // guarded by mu_; null: none
};

// The token this agent presents to other agents: the first line of
// `peer_token_file` when given, else the first admin token of `token_file`,
// else none. Errors as TokenAuth::LoadFile.
absl::StatusOr<std::string> PeerToken(const std::string& peer_token_file,
                                      const std::string& token_file);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_SERVER_AUTH_H_
