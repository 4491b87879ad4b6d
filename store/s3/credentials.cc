#include "store/s3/credentials.h"

#include <cstdlib>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/io.h"
#include "store/s3/http.h"
#include "store/s3/xml.h"

namespace snapshot {
namespace s3 {
namespace {

// Fetched again this long before they expire.
constexpr absl::Duration kRefreshAhead = absl::Minutes(5);

class Static : public CredentialsProvider {
 public:
  Static(Credentials c, std::string source) : c_(std::move(c)), source_(std::move(source)) {}
  absl::StatusOr<Credentials> Get() override { return c_; }
  std::string Source() const override { return source_; }

 private:
  Credentials c_;
  std::string source_;
};

// Temporary credentials from an endpoint, cached until near their expiry.
class Refreshing : public CredentialsProvider {
 public:
  using Fetch = std::function<absl::StatusOr<Credentials>(CurlHandle*)>;
  Refreshing(Fetch fetch, std::string source)
      : fetch_(std::move(fetch)), source_(std::move(source)) {}

  absl::StatusOr<Credentials> Get() override {
    std::lock_guard<std::mutex> l(mu_);
    if (have_ && absl::Now() < cached_.expiration - kRefreshAhead) return cached_;
    absl::StatusOr<Credentials> c = fetch_(&curl_);
    if (!c.ok()) {
      // Still valid ones are better than none while the endpoint is down.
      if (have_ && absl::Now() < cached_.expiration) return cached_;
      return c.status();
    }
    cached_ = *c;
    have_ = true;
    return cached_;
  }
  void Invalidate() override {
    std::lock_guard<std::mutex> l(mu_);
    have_ = false;
  }
  std::string Source() const override { return source_; }

 private:
  Fetch fetch_;
  std::string source_;
  std::mutex mu_;
  CurlHandle curl_;       // guarded by mu_
  Credentials cached_;    // guarded by mu_
  bool have_ = false;     // guarded by mu_
};

absl::StatusOr<absl::Time> ParseIsoTime(const std::string& s, const std::string& what) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", s, &t, &err) ||
      absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*SZ", s, &t, &err)) {
    return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, " gave an expiration time that is not ISO 8601: \"", s, "\""));
}

// {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}: the ECS and
// EC2 metadata endpoints' answer.
absl::StatusOr<Credentials> CredentialsFromJson(const std::string& body,
                                                const std::string& what) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("AccessKeyId") ||
      !j.contains("SecretAccessKey") || !j["AccessKeyId"].is_string() ||
      !j["SecretAccessKey"].is_string()) {
    return absl::UnavailableError(
        absl::StrCat(what, " answered without AccessKeyId and SecretAccessKey"));
  }
  Credentials c;
  c.access_key_id = j["AccessKeyId"].get<std::string>();
  c.secret_access_key = j["SecretAccessKey"].get<std::string>();
  if (j.contains("Token") && j["Token"].is_string()) c.session_token = j["Token"].get<std::string>();
  if (j.contains("Expiration") && j["Expiration"].is_string()) {
    auto t = ParseIsoTime(j["Expiration"].get<std::string>(), what);
    if (!t.ok()) return t.status();
    c.expiration = *t;
  }
  return c;
}

absl::StatusOr<HttpResponse> Call(CurlHandle* h, HttpRequest req, const std::string& what) {
  req.connect_timeout = absl::Seconds(2);
  req.timeout = absl::Seconds(10);
  req.max_body = 1 << 20;
  absl::StatusOr<HttpResponse> r = HttpExchange(h, req);
  if (!r.ok()) {
    return absl::Status(r.status().code(), absl::StrCat(what, ": ", r.status().message()));
  }
  if (r->status < 200 || r->status >= 300) {
    return absl::UnavailableError(
        absl::StrCat(what, " answered HTTP ", r->status, " at ", req.url));
  }
  return r;
}

std::string FormEncode(const Params& p) {
  std::string out;
  for (const auto& [k, v] : p) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, UriEncode(k, false), "=", UriEncode(v, false));
  }
  return out;
}

absl::StatusOr<Credentials> AssumeRoleWithWebIdentity(CurlHandle* h, const std::string& sts,
                                                      const std::string& token_file,
                                                      const std::string& role_arn,
                                                      const std::string& session) {
  // Read each time: the token file is rotated by the platform.
  absl::StatusOr<std::string> token = ReadSmallFile(token_file);
  if (!token.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "AWS_WEB_IDENTITY_TOKEN_FILE ", token_file, " cannot be read: ",
        token.status().message()));
  }
  HttpRequest req;
  req.method = "POST";
  req.url = sts;
  const std::string body = FormEncode({{"Action", "AssumeRoleWithWebIdentity"},
                                       {"Version", "2011-06-15"},
                                       {"RoleArn", role_arn},
                                       {"RoleSessionName", session},
                                       {"WebIdentityToken", std::string(absl::StripAsciiWhitespace(*token))}});
  req.body = body;
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  req.connect_timeout = absl::Seconds(5);
  req.timeout = absl::Seconds(30);
  req.max_body = 1 << 20;
  const std::string what = absl::StrCat("STS AssumeRoleWithWebIdentity (role ", role_arn, ")");
  // The token travels in the body, never in the URL that errors may name.
  absl::StatusOr<HttpResponse> r = HttpExchange(h, req);
  if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat(what, ": ", r.status().message()));
  auto root = ParseXml(r->body);
  if (r->status != 200) {
    std::string code = root.ok() ? (*root)->Child("Error") != nullptr
                                       ? (*root)->Child("Error")->ChildText("Code")
                                       : (*root)->ChildText("Code")
                                 : "";
    const bool retry = r->status >= 500 || code == "IDPCommunicationError" || code == "Throttling";
    return absl::Status(retry ? absl::StatusCode::kUnavailable
                              : absl::StatusCode::kFailedPrecondition,
                        absl::StrCat(what, " was refused: HTTP ", r->status,
                                     code.empty() ? "" : " ", code));
  }
  const XmlNode* c = nullptr;
  if (root.ok()) {
    const XmlNode* result = (*root)->Child("AssumeRoleWithWebIdentityResult");
    if (result != nullptr) c = result->Child("Credentials");
  }
  if (c == nullptr || c->ChildText("AccessKeyId").empty()) {
    return absl::UnavailableError(absl::StrCat(what, " answered without credentials"));
  }
  Credentials out;
  out.access_key_id = c->ChildText("AccessKeyId");
  out.secret_access_key = c->ChildText("SecretAccessKey");
  out.session_token = c->ChildText("SessionToken");
  if (!c->ChildText("Expiration").empty()) {
    auto t = ParseIsoTime(c->ChildText("Expiration"), what);
    if (!t.ok()) return t.status();
    out.expiration = *t;
  }
  return out;
}

absl::StatusOr<Credentials> FromContainer(CurlHandle* h, const std::string& url,
                                          const std::string& auth_token) {
  HttpRequest req;
  req.url = url;
  if (!auth_token.empty()) req.headers = {{"Authorization", auth_token}};
  auto r = Call(h, req, "the container credentials endpoint");
  if (!r.ok()) return r.status();
  return CredentialsFromJson(r->body, "the container credentials endpoint");
}

absl::StatusOr<Credentials> FromInstanceMetadata(CurlHandle* h, const std::string& base) {
  const std::string what = "the EC2 instance metadata service";
  HttpRequest token_req;
  token_req.method = "PUT";
  token_req.url = base + "/latest/api/token";
  token_req.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
  auto token = Call(h, token_req, what + " (IMDSv2 token)");
  if (!token.ok()) return token.status();
  const std::string t(absl::StripAsciiWhitespace(token->body));
  HttpRequest role_req;
  role_req.url = base + "/latest/meta-data/iam/security-credentials/";
  role_req.headers = {{"X-aws-ec2-metadata-token", t}};
  auto role = Call(h, role_req, what + " (role name)");
  if (!role.ok()) return role.status();
  std::string name(absl::StripAsciiWhitespace(role->body));
  name = name.substr(0, name.find('\n'));
  if (name.empty() || name.find('/') != std::string::npos) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " names no IAM role for this instance"));
  }
  HttpRequest creds_req;
  creds_req.url = role_req.url + UriEncode(name, false);
  creds_req.headers = role_req.headers;
  auto creds = Call(h, creds_req, what);
  if (!creds.ok()) return creds.status();
  return CredentialsFromJson(creds->body, what);
}

// "[name]" sections of an INI file: key = value lines.
std::map<std::string, std::map<std::string, std::string>> ParseIni(const std::string& text) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string section;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(absl::StripAsciiWhitespace(line.substr(1, line.size() - 2)));
      continue;
    }
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos || section.empty()) continue;
    out[section][absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, eq)))] =
        std::string(absl::StripAsciiWhitespace(line.substr(eq + 1)));
  }
  return out;
}

std::string Home(const GetEnv& env) {
  std::string home = env("HOME");
  return home.empty() ? "/root" : home;
}

}  // namespace

std::shared_ptr<CredentialsProvider> StaticCredentials(Credentials c, std::string source) {
  return std::make_shared<Static>(std::move(c), std::move(source));
}

std::string ProcessEnv(const std::string& name) {
  const char* v = getenv(name.c_str());
  return v == nullptr ? "" : v;
}

absl::StatusOr<Credentials> ParseSharedFiles(const std::string& credentials_text,
                                             const std::string& config_text,
                                             const std::string& profile) {
  auto creds = ParseIni(credentials_text);
  auto config = ParseIni(config_text);
  const std::map<std::string, std::string>* section = nullptr;
  if (creds.count(profile)) {
    section = &creds[profile];
  } else {
    const std::string name = profile == "default" ? "default" : "profile " + profile;
    if (config.count(name)) section = &config[name];
  }
  if (section == nullptr) {
    return absl::NotFoundError(absl::StrCat("no profile \"", profile, "\""));
  }
  auto get = [&](const char* k) {
    auto it = section->find(k);
    return it == section->end() ? std::string() : it->second;
  };
  Credentials c;
  c.access_key_id = get("aws_access_key_id");
  c.secret_access_key = get("aws_secret_access_key");
  c.session_token = get("aws_session_token");
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "profile \"", profile, "\" has no aws_access_key_id and aws_secret_access_key"));
  }
  return c;
}

absl::StatusOr<std::shared_ptr<CredentialsProvider>> DefaultCredentialsChain(
    const std::string& region, GetEnv env) {
  // 1. The environment.
  if (!env("AWS_ACCESS_KEY_ID").empty() || !env("AWS_SECRET_ACCESS_KEY").empty()) {
    Credentials c;
    c.access_key_id = env("AWS_ACCESS_KEY_ID");
    c.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
    c.session_token = env("AWS_SESSION_TOKEN");
    if (c.access_key_id.empty() || c.secret_access_key.empty()) {
      return absl::FailedPreconditionError(
          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    }
    return StaticCredentials(std::move(c), "environment");
  }
  // 2. The shared files.
  {
    std::string profile = env("AWS_PROFILE");
    const bool explicit_profile = !profile.empty();
    if (profile.empty()) profile = "default";
    std::string cred_file = env("AWS_SHARED_CREDENTIALS_FILE");
    if (cred_file.empty()) cred_file = Home(env) + "/.aws/credentials";
    std::string config_file = env("AWS_CONFIG_FILE");
    if (config_file.empty()) config_file = Home(env) + "/.aws/config";
    absl::StatusOr<std::string> ct = ReadSmallFile(cred_file);
    absl::StatusOr<std::string> cf = ReadSmallFile(config_file);
    if (ct.ok() || cf.ok()) {
      absl::StatusOr<Credentials> c =
          ParseSharedFiles(ct.ok() ? *ct : "", cf.ok() ? *cf : "", profile);
      if (c.ok()) {
        return StaticCredentials(std::move(*c), absl::StrCat("shared files (profile ", profile, ")"));
      }
      if (explicit_profile || c.status().code() != absl::StatusCode::kNotFound) {
        return absl::FailedPreconditionError(absl::StrCat(
            "AWS shared files ", cred_file, " / ", config_file, ": ", c.status().message()));
      }
    } else if (explicit_profile) {
      return absl::FailedPreconditionError(absl::StrCat(
          "AWS_PROFILE=", profile, " but neither ", cred_file, " nor ", config_file,
          " can be read"));
    }
  }
  // 3. Web identity.
  if (!env("AWS_WEB_IDENTITY_TOKEN_FILE").empty()) {
    const std::string token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
    const std::string role = env("AWS_ROLE_ARN");
    if (role.empty()) {
      return absl::FailedPreconditionError(
          "AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN");
    }
    std::string session = env("AWS_ROLE_SESSION_NAME");
    if (session.empty()) session = "snapshot-agent";
    std::string sts = env("AWS_ENDPOINT_URL_STS");
    if (sts.empty()) sts = absl::StrCat("https://sts.", region, ".amazonaws.com");
    if (sts.back() != '/') sts += "/";
    return std::shared_ptr<CredentialsProvider>(std::make_shared<Refreshing>(
        [=](CurlHandle* h) { return AssumeRoleWithWebIdentity(h, sts, token_file, role, session); },
        "web identity"));
  }
  // 4. The container endpoint.
  std::string container = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (container.empty() && !env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty()) {
    container = "http://169.254.170.2" + env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  }
  if (!container.empty()) {
    const std::string auth = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    return std::shared_ptr<CredentialsProvider>(std::make_shared<Refreshing>(
        [=](CurlHandle* h) { return FromContainer(h, container, auth); }, "container endpoint"));
  }
  // 5. Instance metadata.
  if (absl::AsciiStrToLower(env("AWS_EC2_METADATA_DISABLED")) != "true") {
    std::string base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (base.empty()) base = "http://169.254.169.254";
    while (!base.empty() && base.back() == '/') base.pop_back();
    return std::shared_ptr<CredentialsProvider>(std::make_shared<Refreshing>(
        [=](CurlHandle* h) { return FromInstanceMetadata(h, base); }, "instance metadata"));
  }
  return absl::FailedPreconditionError(
      "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in "
      "~/.aws/credentials, web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), or run "
      "where the container or instance metadata endpoint gives a role");
}

}  // namespace s3
}  // namespace snapshot
