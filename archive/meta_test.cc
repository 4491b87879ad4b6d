#include "archive/meta.h"

#include <gtest/gtest.h>

namespace snapshot {
namespace {

TEST(Meta, EncodesLikeGoEncodingJson) {
  SnapshotMeta m;
  m.version = 1;
  m.id = "2-18-1795640819402";
  m.index = 18;
  m.term = 2;
  m.peers = std::string("\xc0", 1);
  m.configuration_index = 0;
  m.size = 0;
  EXPECT_EQ(*EncodeMetaJson(m),
            "{\"Version\":1,\"ID\":\"2-18-1795640819402\",\"Index\":18,"
            "\"Term\":2,\"Peers\":\"wA==\",\"Configuration\":{\"Servers\":null},"
            "\"ConfigurationIndex\":0,\"Size\":0}\n");
}

TEST(Meta, RoundTripsLargeNumbersAndServers) {
  SnapshotMeta m;
  m.id = "x";
  m.index = UINT64_MAX;
  m.term = UINT64_MAX - 1;
  m.size = uint64_t{1} << 40;
  m.servers = {{0, "a", "127.0.0.1:1"}, {1, "b", "[::1]:2"}};
  auto parsed = ParseMetaJson(*EncodeMetaJson(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, m);
}

TEST(Meta, RejectsWrongTypesAndMissingFields) {
  auto code = [](const std::string& j) {
    return ParseMetaJson(j).status().code();
  };
  const std::string ok =
      R"({"Version":1,"ID":"x","Index":1,"Term":1,"Size":0})";
  EXPECT_EQ(code(ok), absl::StatusCode::kOk);
  EXPECT_EQ(code(R"({"Version":1,"ID":"x","Index":1,"Term":1})"),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(code(R"({"Version":1,"ID":"x","Index":"1","Term":1,"Size":0})"),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(code(R"({"Version":1,"ID":"x","Index":1.5,"Term":1,"Size":0})"),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(code(R"({"Version":1,"ID":7,"Index":1,"Term":1,"Size":0})"),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(code(R"({"Version":1,"ID":"x","Index":1,"Term":1,"Size":0,
                    "Peers":"!!"})"),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(code(R"({"Version":1,"ID":"x","Index":1,"Term":1,"Size":0,
                    "Configuration":{"Servers":{}}})"),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(code("[]"), absl::StatusCode::kDataLoss);
  EXPECT_EQ(code("{"), absl::StatusCode::kDataLoss);
  // Unknown fields are ignored, as hashicorp/raft's Go decoder does.
  EXPECT_EQ(code(R"({"Version":1,"ID":"x","Index":1,"Term":1,"Size":0,
                    "Future":true})"),
            absl::StatusCode::kOk);
}

TEST(Meta, InvalidUtf8IsInvalidArgument) {
  SnapshotMeta m;
  m.id = "\xff";
  EXPECT_EQ(EncodeMetaJson(m).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace snapshot

namespace snapshot {
namespace {

TEST(Meta, EngineExtensionsRoundTripAfterSizeAndOnlyWhenSet) {
  SnapshotMeta m;
  m.id = "2-9-1";
  m.index = 9;
  m.term = 2;
  m.size = 20512;
  m.engine = kEngineEtcd;
  m.etcd.cluster_id = "1c45a069f3a1d796";
  m.etcd.member_id = "b71f75320dc06a6c";
  m.etcd.member_name = "m1";
  m.etcd.leader = true;
  m.etcd.revision = 3;
  m.etcd.version = "3.4.23";
  auto json = EncodeMetaJson(m);
  ASSERT_TRUE(json.ok());
  EXPECT_NE(json->find(R"("Size":20512,"Engine":"etcd","Etcd":{"ClusterID":"1c45a069f3a1d796","MemberID":"b71f75320dc06a6c","MemberName":"m1","Leader":true,"Revision":3,"Version":"3.4.23"}})"),
            std::string::npos)
      << *json;
  auto back = ParseMetaJson(*json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  // Without an engine nothing is added (Nomad's bytes stay Nomad's).
  SnapshotMeta plain = m;
  plain.engine.clear();
  plain.etcd = {};
  auto pj = EncodeMetaJson(plain);
  ASSERT_TRUE(pj.ok());
  EXPECT_EQ(pj->find("Engine"), std::string::npos);
  EXPECT_EQ(ParseMetaJson(R"({"Version":1,"ID":"x","Index":1,"Term":1,"Size":0,"Etcd":[]})")
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace snapshot
