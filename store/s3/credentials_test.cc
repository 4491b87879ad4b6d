#include "store/s3/credentials.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "base/testing.h"

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

}  // namespace
}  // namespace s3
}  // namespace snapshot
