#include "server/auth.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/io.h"
#include "base/status_macros.h"

namespace snapshot {

const char* RoleName(Permission p) {
  return p == Permission::kAdmin ? "admin" : "read";
}

absl::StatusOr<TokenAuth> TokenAuth::LoadFile(const std::string& path) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSecretFile(path, "token file"));
  absl::StatusOr<TokenAuth> auth = Parse(text);
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

absl::StatusOr<Permission> TokenAuth::Check(
    const grpc::ServerContextBase& context, Permission need,
    absl::string_view method) const {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "missing \"authorization: Bearer <token>\" metadata");
  }
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  if (value.substr(0, kBearer.size()) != kBearer) {
    return absl::UnauthenticatedError(
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
  if (found == nullptr) return absl::UnauthenticatedError("unknown token");
  if (need == Permission::kAdmin && found->role != Permission::kAdmin) {
    return absl::PermissionDeniedError(
        absl::StrCat(method, " needs a token with the admin role; this token "
                             "has the read role"));
  }
  return found->role;
}

size_t TokenAuth::admin_tokens() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.role == Permission::kAdmin;
  return n;
}

std::string TokenAuth::FirstAdminToken() const {
  for (const Entry& e : entries_) {
    if (e.role == Permission::kAdmin) return e.token;
  }
  return "";
}

size_t TokenAuth::read_tokens() const { return entries_.size() - admin_tokens(); }

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::FromFile(
    const std::string& token_file) {
  SA_ASSIGN_OR_RETURN(TokenAuth tokens, TokenAuth::LoadFile(token_file));
  auto a = std::make_unique<Authorizer>();
  a->token_file_ = token_file;
  a->tokens_ = std::make_shared<const TokenAuth>(std::move(tokens));
  return a;
}

absl::StatusOr<std::string> Authorizer::Authorize(const grpc::ServerContextBase& context,
                                                  Permission need,
                                                  absl::string_view method) const {
  std::shared_ptr<const TokenAuth> tokens;
  {
    std::lock_guard<std::mutex> l(mu_);
    tokens = tokens_;
  }
  if (tokens == nullptr) return std::string("anonymous");
  SA_ASSIGN_OR_RETURN(Permission role, tokens->Check(context, need, method));
  return std::string(RoleName(role));
}

absl::StatusOr<std::string> Authorizer::Reload() {
  if (token_file_.empty()) return std::string("no token file");
  SA_ASSIGN_OR_RETURN(TokenAuth fresh, TokenAuth::LoadFile(token_file_));
  auto next = std::make_shared<const TokenAuth>(std::move(fresh));
  std::shared_ptr<const TokenAuth> old;
  {
    std::lock_guard<std::mutex> l(mu_);
    old = std::exchange(tokens_, next);
  }
  std::set<std::pair<std::string, Permission>> before, after;
  for (const auto& e : old->entries_) before.insert({e.token, e.role});
  for (const auto& e : next->entries_) after.insert({e.token, e.role});
  size_t added = 0, removed = 0;
  for (const auto& e : after) added += before.count(e) == 0;
  for (const auto& e : before) removed += after.count(e) == 0;
  return absl::StrFormat(
      "%d admin and %d read tokens (were %d and %d): %d added, %d removed",
      next->admin_tokens(), next->read_tokens(), old->admin_tokens(),
      old->read_tokens(), added, removed);
}

absl::StatusOr<std::string> PeerToken(const std::string& peer_token_file,
                                      const std::string& token_file) {
  if (!peer_token_file.empty()) {
    SA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(peer_token_file));
    absl::string_view first = text;
    first = absl::StripAsciiWhitespace(first.substr(0, first.find('\n')));
    if (first.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("peer token file ", peer_token_file, " is empty"));
    }
    return std::string(first);
  }
  if (token_file.empty()) return std::string();
  SA_ASSIGN_OR_RETURN(TokenAuth tokens, TokenAuth::LoadFile(token_file));
  return tokens.FirstAdminToken();
}

}  // namespace snapshot
