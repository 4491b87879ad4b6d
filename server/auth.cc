#include "server/auth.h"

#include <openssl/crypto.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace snapshot {

absl::StatusOr<TokenAuth> TokenAuth::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<TokenAuth> auth = Parse(ss.str());
  if (!auth.ok()) {
    return absl::Status(auth.status().code(),
                        absl::StrCat(path, ": ", auth.status().message()));
  }
  return auth;
}

absl::StatusOr<TokenAuth> TokenAuth::Parse(const std::string& text) {
  TokenAuth auth;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() != 2 || (f[0] != "read" && f[0] != "admin")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no, " is not \"read TOKEN\" or \"admin TOKEN\""));
    }
    if (f[1].size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no, ": tokens must be at least 16 characters"));
    }
    auth.entries_.push_back(
        {std::string(f[1]), f[0] == "admin" ? Permission::kAdmin : Permission::kRead});
  }
  if (auth.entries_.empty()) {
    return absl::InvalidArgumentError("the token file holds no token");
  }
  return auth;
}

grpc::Status TokenAuth::Check(const grpc::ServerContextBase& context,
                              Permission need, const char* method) const {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing \"authorization: Bearer <token>\" metadata");
  }
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  if (value.substr(0, kBearer.size()) != kBearer) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the authorization metadata is not \"Bearer <token>\"");
  }
  absl::string_view token = value.substr(kBearer.size());
  const Entry* found = nullptr;
  for (const Entry& e : entries_) {
    // Constant time for equal lengths; the length itself is not secret.
    if (e.token.size() == token.size() &&
        CRYPTO_memcmp(e.token.data(), token.data(), token.size()) == 0) {
      found = &e;
    }
  }
  if (found == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown token");
  }
  if (need == Permission::kAdmin && found->role != Permission::kAdmin) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat(method, " needs a token with the admin role; this token "
                             "has the read role"));
  }
  return grpc::Status::OK;
}

}  // namespace snapshot
