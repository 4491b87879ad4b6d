#include "store/s3/sigv4.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace snapshot {
namespace s3 {
namespace {

std::string Header(const Signed& s, const std::string& name) {
  for (const auto& [k, v] : s.headers) {
    if (k == name) return v;
  }
  return "";
}

Credentials Example() {
  Credentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  return c;
}

absl::Time May24() { return absl::FromUnixSeconds(1369353600); }  // 20130524T000000Z

// AWS's documented example "GET Object" (Amazon S3 API reference,
// "Signature Calculations for the Authorization Header").
TEST(SigV4, AwsGetObjectExample) {
  SigningInput in;
  in.method = "GET";
  in.host = "examplebucket.s3.amazonaws.com";
  in.path = "/test.txt";
  in.headers = {{"Range", "bytes=0-9"}};
  in.payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  Signed s = SignV4(in, Example(), "us-east-1", "s3", May24());
  EXPECT_EQ(Header(s, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(Header(s, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(Header(s, "host"), "");  // libcurl sends it
}

// AWS's documented example "GET Bucket (List Objects)": a query signed
// sorted, with a valueless parameter written "name=".
TEST(SigV4, AwsListObjectsExample) {
  SigningInput in;
  in.method = "GET";
  in.host = "examplebucket.s3.amazonaws.com";
  in.path = "/";
  in.query = {{"prefix", "J"}, {"max-keys", "2"}};
  in.payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  Signed s = SignV4(in, Example(), "us-east-1", "s3", May24());
  EXPECT_EQ(s.query, "max-keys=2&prefix=J");
  EXPECT_TRUE(absl::EndsWith(
      Header(s, "Authorization"),
      "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
}

TEST(SigV4, EncodingAndSessionToken) {
  EXPECT_EQ(UriEncode("a b/c~d*é", true), "a%20b/c~d%2A%C3%A9");
  EXPECT_EQ(UriEncode("dir/", false), "dir%2F");
  EXPECT_EQ(CanonicalQuery({{"uploads", ""}, {"prefix", "x/y"}}), "prefix=x%2Fy&uploads=");
  Credentials c = Example();
  c.session_token = "token";
  SigningInput in;
  in.method = "PUT";
  in.host = "127.0.0.1:9000";
  in.path = "/b/k";
  in.payload_sha256 = "UNSIGNED-PAYLOAD";
  Signed s = SignV4(in, c, "us-east-1", "s3", May24());
  EXPECT_EQ(Header(s, "x-amz-security-token"), "token");
  EXPECT_NE(Header(s, "Authorization").find("x-amz-security-token"), std::string::npos);
  // The secret never appears in what is sent.
  for (const auto& [k, v] : s.headers) {
    EXPECT_EQ(v.find(c.secret_access_key), std::string::npos) << k;
  }
}

}  // namespace
}  // namespace s3
}  // namespace snapshot
