// The client's retries against a loopback HTTP server that fails on purpose
// (503 SlowDown, then a dropped connection) before it answers. Signatures
// are not checked here: that is client_rgw_test's job against a real server.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "store/s3/client.h"
#include "store/testing/fault_proxy.h"

namespace snapshot {
namespace s3 {
namespace {

// A loopback server that follows `script`, one entry per request: "503",
// "drop" (closes without answering), then 200.
class FlakyServer : public testing::FaultProxy {
 public:
  explicit FlakyServer(std::vector<std::string> script)
      : FaultProxy(0, [script](const Request& r) {
          return r.n < static_cast<int>(script.size()) ? script[r.n] : std::string();
        }) {}
};

ClientOptions Options(int port, int attempts) {
  ClientOptions o;
  o.endpoint = absl::StrCat("http://127.0.0.1:", port);
  o.bucket = "bucket";
  o.max_attempts = attempts;
  o.first_backoff = absl::Milliseconds(5);
  o.max_backoff = absl::Milliseconds(20);
  return o;
}

std::shared_ptr<CredentialsProvider> Creds() {
  Credentials c;
  c.access_key_id = "AKID";
  c.secret_access_key = "secret";
  return StaticCredentials(c, "test");
}

TEST(S3Retry, SlowDownAndDroppedConnectionsAreRetried) {
  FlakyServer server({"503", "drop", "503"});
  Client c(Options(server.port(), 6), Creds());
  absl::Status s = c.PutObject("k", "body");
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(server.requests(), 4);
}

TEST(S3Retry, GivesUpAfterMaxAttemptsAsUnavailable) {
  FlakyServer server({"503", "503", "503", "503"});
  Client c(Options(server.port(), 3), Creds());
  absl::Status s = c.PutObject("k", "body");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("SlowDown"), std::string::npos) << s;
  EXPECT_NE(s.message().find("after 3 attempts"), std::string::npos) << s;
  EXPECT_EQ(server.requests(), 3);
}

TEST(S3Retry, UploadPartIsRetriedWithTheSameBytes) {
  FlakyServer server({"drop", "503"});
  Client c(Options(server.port(), 6), Creds());
  auto etag = c.UploadPart("k", "upload-1", 1, std::string(100000, 'x'));
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(*etag, "\"x\"");
  EXPECT_EQ(server.requests(), 3);
}

}  // namespace
}  // namespace s3
}  // namespace snapshot
