// The S3 client against a real S3 server (Ceph RGW on loopback).
#include "store/s3/client.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "store/testing/rgw_server.h"

namespace snapshot {
namespace s3 {
namespace {



TEST(S3Client, SmallObjects) {
  auto c = testing::SharedRgw()->NewClient();
  ASSERT_TRUE(c->CheckBucket().ok());
  ASSERT_TRUE(c->PutObject("small/a b+c.json", "{\"x\":1}").ok());
  auto got = c->GetSmallObject("small/a b+c.json", 1024);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "{\"x\":1}");
  auto head = c->HeadObject("small/a b+c.json");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, 7u);
  EXPECT_EQ(c->GetSmallObject("small/a b+c.json", 3).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(c->GetSmallObject("small/missing", 10).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(c->DeleteObject("small/a b+c.json").ok());
  EXPECT_TRUE(c->DeleteObject("small/a b+c.json").ok());  // already gone
  EXPECT_EQ(c->HeadObject("small/a b+c.json").status().code(), absl::StatusCode::kNotFound);
}

TEST(S3Client, ListingPagesThroughMoreThanAThousandKeys) {
  auto c = testing::SharedRgw()->NewClient();
  for (int i = 0; i < 1005; ++i) {
    ASSERT_TRUE(c->PutObject(absl::StrCat("many/", 10000 + i), "x").ok());
  }
  ASSERT_TRUE(c->PutObject("many-other/not-listed", "x").ok());
  auto list = c->ListObjects("many/");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1005u);
  EXPECT_EQ((*list)[0].key, "many/10000");
  EXPECT_EQ((*list)[1004].key, "many/11004");
  EXPECT_EQ((*list)[0].size, 1u);
  EXPECT_GT((*list)[0].last_modified, absl::Now() - absl::Hours(1));
}

TEST(S3Client, MultipartUploadAndRangedGet) {
  auto c = testing::SharedRgw()->NewClient();
  const std::string a = testing::RandomBytes(5 << 20, 1), b = testing::RandomBytes(5 << 20, 2), tail = testing::RandomBytes(1000, 3);
  auto id = c->CreateMultipartUpload("mp/object");
  ASSERT_TRUE(id.ok()) << id.status();
  std::vector<std::string> etags;
  for (int i = 0; i < 3; ++i) {
    auto e = c->UploadPart("mp/object", *id, i + 1, i == 0 ? a : i == 1 ? b : tail);
    ASSERT_TRUE(e.ok()) << e.status();
    etags.push_back(*e);
  }
  auto uploads = c->ListMultipartUploads("mp/");
  ASSERT_TRUE(uploads.ok()) << uploads.status();
  ASSERT_EQ(uploads->size(), 1u);
  EXPECT_EQ((*uploads)[0].upload_id, *id);
  ASSERT_TRUE(c->CompleteMultipartUpload("mp/object", *id, etags).ok());
  auto head = c->HeadObject("mp/object");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, a.size() + b.size() + tail.size());
  std::string whole;
  StringSink sink(&whole);
  auto n = c->GetObject("mp/object", 0, &sink, 1 << 30);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_TRUE(whole == a + b + tail);
  std::string from;
  StringSink from_sink(&from);
  const uint64_t offset = a.size() + 17;
  ASSERT_TRUE(c->GetObject("mp/object", offset, &from_sink, 1 << 30).ok());
  EXPECT_TRUE(from == (a + b + tail).substr(offset));
  EXPECT_EQ(c->GetObject("mp/object", 0, &sink, 1000).status().code(),
            absl::StatusCode::kResourceExhausted);
  // An abandoned upload is listed, then aborted.
  auto left = c->CreateMultipartUpload("mp/left");
  ASSERT_TRUE(left.ok());
  ASSERT_TRUE(c->UploadPart("mp/left", *left, 1, a).ok());
  ASSERT_TRUE(c->AbortMultipartUpload("mp/left", *left).ok());
  uploads = c->ListMultipartUploads("mp/");
  ASSERT_TRUE(uploads.ok());
  EXPECT_TRUE(uploads->empty());
}

TEST(S3Client, RefusedCredentialsAndMissingBucketAreClearErrors) {
  Credentials wrong;
  wrong.access_key_id = testing::SharedRgw()->access_key();
  wrong.secret_access_key = "not-the-secret-0123456789";
  Client bad_secret(testing::SharedRgw()->Options(), StaticCredentials(wrong, "test"));
  absl::Status s = bad_secret.PutObject("x", "y");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("SignatureDoesNotMatch"), std::string::npos) << s;
  EXPECT_EQ(s.message().find("not-the-secret"), std::string::npos) << s;
  wrong.access_key_id = "NOSUCHKEY00000000000";
  Client bad_key(testing::SharedRgw()->Options(), StaticCredentials(wrong, "test"));
  s = bad_key.CheckBucket();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;

  ClientOptions o = testing::SharedRgw()->Options();
  o.bucket = "no-such-bucket";
  Client missing(o, testing::SharedRgw()->Credentials());
  s = missing.PutObject("x", "y");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("NoSuchBucket"), std::string::npos) << s;
}

TEST(S3Client, UnreachableStoreIsRetriedThenUnavailable) {
  ClientOptions o = testing::SharedRgw()->Options();
  o.endpoint = "http://127.0.0.1:1";  // nothing listens
  o.max_attempts = 3;
  Client c(o, testing::SharedRgw()->Credentials());
  absl::Status s = c.PutObject("x", "y");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("after 3 attempts"), std::string::npos) << s;
}

TEST(S3Url, Parse) {
  auto u = ParseS3Url("s3://my-bucket/a/b/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->bucket, "my-bucket");
  EXPECT_EQ(u->prefix, "a/b");
  EXPECT_TRUE(ParseS3Url("s3://my-bucket").ok());
  EXPECT_FALSE(ParseS3Url("http://my-bucket/x").ok());
  EXPECT_FALSE(ParseS3Url("s3://My_Bucket/x").ok());
  EXPECT_FALSE(ParseS3Url("s3://ab/x").ok());
  EXPECT_FALSE(ParseS3Url("s3://bucket//x").ok());
}

}  // namespace
}  // namespace s3
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new snapshot::testing::RgwEnvironment());
  return RUN_ALL_TESTS();
}
