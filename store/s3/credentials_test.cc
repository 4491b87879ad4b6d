#include "store/s3/credentials.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/testing.h"
#include "store/testing/fault_proxy.h"

namespace snapshot {
namespace s3 {
namespace {

GetEnv Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) {
    auto it = vars.find(name);
    return it == vars.end() ? std::string() : it->second;
  };
}

TEST(Credentials, EnvironmentComesFirst) {
  auto p = DefaultCredentialsChain(
      "us-east-1", Env({{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "SECRET"},
                        {"AWS_SESSION_TOKEN", "TOKEN"}, {"AWS_PROFILE", "other"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Source(), "environment");
  auto c = (*p)->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKID");
  EXPECT_EQ(c->session_token, "TOKEN");
  // Half a key pair is a mistake, not a reason to look further.
  p = DefaultCredentialsChain("us-east-1", Env({{"AWS_ACCESS_KEY_ID", "AKID"}}));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Credentials, SharedFilesAndProfiles) {
  testing::TempDir dir;
  const std::string creds = dir.path() + "/credentials", config = dir.path() + "/config";
  std::ofstream(creds) << "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n"
                          "# comment\n[ci]\naws_access_key_id=CI\naws_secret_access_key=cisecret\n"
                          "aws_session_token = citoken\n";
  std::ofstream(config) << "[profile cfg]\naws_access_key_id = CFG\n"
                           "aws_secret_access_key = cfgsecret\n[profile empty]\nregion = x\n";
  auto env = [&](std::map<std::string, std::string> more) {
    more["AWS_SHARED_CREDENTIALS_FILE"] = creds;
    more["AWS_CONFIG_FILE"] = config;
    more["AWS_EC2_METADATA_DISABLED"] = "true";
    return Env(more);
  };
  auto p = DefaultCredentialsChain("us-east-1", env({}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Get()->access_key_id, "DEF");
  p = DefaultCredentialsChain("us-east-1", env({{"AWS_PROFILE", "ci"}}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Get()->session_token, "citoken");
  EXPECT_EQ((*p)->Source(), "shared files (profile ci)");
  p = DefaultCredentialsChain("us-east-1", env({{"AWS_PROFILE", "cfg"}}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Get()->access_key_id, "CFG");
  // A named profile that is missing or has no keys is an error, never a
  // silent fall-through to another identity.
  p = DefaultCredentialsChain("us-east-1", env({{"AWS_PROFILE", "nope"}}));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  p = DefaultCredentialsChain("us-east-1", env({{"AWS_PROFILE", "empty"}}));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.status().message().find("defsecret"), std::string::npos) << p.status();
}

TEST(Credentials, LaterSourcesAndNone) {
  auto p = DefaultCredentialsChain(
      "eu-west-1", Env({{"HOME", "/nonexistent"}, {"AWS_WEB_IDENTITY_TOKEN_FILE", "/t"},
                        {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Source(), "web identity");
  // The token file is unreadable: a clear error naming it.
  auto c = (*p)->Get();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("/t"), std::string::npos);
  p = DefaultCredentialsChain("eu-west-1", Env({{"HOME", "/nonexistent"},
                                                {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x"}}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Source(), "container endpoint");
  p = DefaultCredentialsChain("eu-west-1", Env({{"HOME", "/nonexistent"},
                                                {"AWS_EC2_METADATA_DISABLED", "true"}}));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- Endpoints served on loopback by the test -------------------------------

std::string Answer(int status, const std::string& body) {
  return absl::StrCat("HTTP/1.1 ", status, status == 200 ? " OK" : " Error",
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

std::string IsoIn(absl::Duration d) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + d, absl::UTCTimeZone());
}

// IMDSv2: a token first (PUT), then the role's name, then its credentials;
// a request without the token is refused as by EC2. The credentials expire
// in 4 minutes: inside the refresh margin, so every Get fetches again.
TEST(Credentials, InstanceMetadataV2TokenFirstAndRefreshedBeforeExpiry) {
  int fetched = 0;
  std::vector<std::string> seen;
  testing::FaultProxy imds(0, [&](const testing::FaultProxy::Request& r) {
    seen.push_back(r.head.substr(0, r.head.find("\r\n")));
    if (absl::StartsWith(r.head, "PUT /latest/api/token ")) {
      if (r.head.find("X-aws-ec2-metadata-token-ttl-seconds:") == std::string::npos) {
        return Answer(400, "");
      }
      return Answer(200, "TOKEN-1");
    }
    if (r.head.find("X-aws-ec2-metadata-token: TOKEN-1") == std::string::npos) {
      return Answer(401, "");
    }
    if (absl::StartsWith(r.head, "GET /latest/meta-data/iam/security-credentials/ ")) {
      return Answer(200, "backup-role");
    }
    if (absl::StartsWith(r.head, "GET /latest/meta-data/iam/security-credentials/backup-role ")) {
      ++fetched;
      return Answer(200, absl::StrCat(R"({"Code":"Success","AccessKeyId":"ASIA)", fetched,
                                      R"(","SecretAccessKey":"s","Token":"t","Expiration":")",
                                      IsoIn(absl::Minutes(4)), "\"}"));
    }
    return Answer(404, "");
  });
  auto p = DefaultCredentialsChain(
      "us-east-1", Env({{"HOME", "/nonexistent"},
                        {"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint() + "/"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Source(), "instance metadata");
  auto c = (*p)->Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIA1");
  EXPECT_EQ(c->session_token, "t");
  ASSERT_GE(seen.size(), 3u);
  EXPECT_TRUE(absl::StartsWith(seen[0], "PUT /latest/api/token")) << "IMDSv2: the token first";
  c = (*p)->Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIA2") << "credentials that expire within 5 minutes are renewed";
}

// Web identity (EKS): the token file's content goes to STS in the POST body;
// STS's refusal is FAILED_PRECONDITION naming the role, never the token.
TEST(Credentials, WebIdentityThroughStsOnLoopback) {
  testing::TempDir dir;
  const std::string token_file = dir.path() + "/token";
  std::ofstream(token_file) << "eyJ-the-projected-token\n";
  std::string body_seen, head_seen;
  bool refuse = false;
  testing::FaultProxy sts(0, [&](const testing::FaultProxy::Request& r) {
    head_seen = r.head;
    body_seen = r.body;
    if (refuse) {
      return Answer(403, "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>");
    }
    return Answer(200, absl::StrCat(
                           "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                           "<Credentials><AccessKeyId>ASIAWEB</AccessKeyId>"
                           "<SecretAccessKey>websecret</SecretAccessKey>"
                           "<SessionToken>websession</SessionToken><Expiration>",
                           IsoIn(absl::Hours(1)),
                           "</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
                           "</AssumeRoleWithWebIdentityResponse>"));
  });
  auto p = DefaultCredentialsChain(
      "eu-west-1", Env({{"HOME", "/nonexistent"},
                        {"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                        {"AWS_ROLE_ARN", "arn:aws:iam::1:role/backups"},
                        {"AWS_ENDPOINT_URL_STS", sts.endpoint()}}));
  ASSERT_TRUE(p.ok()) << p.status();
  auto c = (*p)->Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIAWEB");
  EXPECT_EQ(c->session_token, "websession");
  EXPECT_TRUE(absl::StartsWith(head_seen, "POST / ")) << head_seen;
  EXPECT_EQ(head_seen.find("eyJ-the-projected-token"), std::string::npos) << "not in the URL";
  EXPECT_NE(body_seen.find("WebIdentityToken=eyJ-the-projected-token"), std::string::npos);
  EXPECT_NE(body_seen.find("Action=AssumeRoleWithWebIdentity"), std::string::npos);
  // A fresh chain whose STS refuses.
  refuse = true;
  p = DefaultCredentialsChain(
      "eu-west-1", Env({{"HOME", "/nonexistent"},
                        {"AWS_WEB_IDENTITY_TOKEN_FILE", token_file},
                        {"AWS_ROLE_ARN", "arn:aws:iam::1:role/backups"},
                        {"AWS_ENDPOINT_URL_STS", sts.endpoint()}}));
  ASSERT_TRUE(p.ok());
  c = (*p)->Get();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
  EXPECT_NE(c.status().message().find("AccessDenied"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("role/backups"), std::string::npos) << c.status();
  EXPECT_EQ(c.status().message().find("eyJ"), std::string::npos) << c.status();
}

// The container endpoint (ECS, EKS Pod Identity) with its authorization
// token.
TEST(Credentials, ContainerEndpointWithAuthorization) {
  testing::FaultProxy ecs(0, [&](const testing::FaultProxy::Request& r) {
    if (r.head.find("Authorization: pod-token") == std::string::npos) return Answer(401, "");
    return Answer(200, R"({"AccessKeyId":"ASIAECS","SecretAccessKey":"e","Token":"et"})");
  });
  auto p = DefaultCredentialsChain(
      "us-east-1", Env({{"HOME", "/nonexistent"},
                        {"AWS_CONTAINER_CREDENTIALS_FULL_URI", ecs.endpoint() + "/creds"},
                        {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-token"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  auto c = (*p)->Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIAECS");
}

}  // namespace
}  // namespace s3
}  // namespace snapshot
