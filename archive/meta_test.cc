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
