#include "etcd/supervisor.h"

#include "gtest/gtest.h"

namespace snapshot {
namespace {

TEST(ParseEtcdCommand, ReadsTheFlagsARestoreNeeds) {
  auto c = ParseEtcdCommand(
      "etcd --name m1 --data-dir '/var/lib/etcd/my data' "
      "--initial-cluster=m1=http://10.0.0.1:2380 --initial-advertise-peer-urls "
      "http://10.0.0.1:2380 --initial-cluster-token \"tok en\"");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "m1");
  EXPECT_EQ(c->data_dir, "/var/lib/etcd/my data");
  EXPECT_EQ(c->initial_cluster, "m1=http://10.0.0.1:2380");
  EXPECT_EQ(c->initial_advertise_peer_urls, "http://10.0.0.1:2380");
  EXPECT_EQ(c->initial_cluster_token, "tok en");
  EXPECT_EQ(c->argv.front(), "etcd");
}

TEST(ParseEtcdCommand, SaysWhatIsMissing) {
  auto c = ParseEtcdCommand("etcd --name m1 --data-dir d --initial-cluster m1=http://x:1");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("--initial-advertise-peer-urls"), std::string::npos);
  EXPECT_EQ(ParseEtcdCommand("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseEtcdCommand("etcd --name 'm1").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EtcdAgents, AOneMemberClusterIsItsOwnAgent) {
  auto c = ParseEtcdCommand(
      "etcd --name s1 --data-dir /d --initial-cluster s1=http://127.0.0.1:2380 "
      "--initial-advertise-peer-urls http://127.0.0.1:2380");
  ASSERT_TRUE(c.ok()) << c.status();
  auto agents = AgentsOrSelf({}, *c, "127.0.0.1:7150");
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_EQ(agents["s1"], "127.0.0.1:7150");
  // Given agents win; several members need the list.
  EXPECT_EQ(AgentsOrSelf({{"s1", "10.0.0.1:7150"}}, *c, "x")["s1"], "10.0.0.1:7150");
  c->initial_cluster = "s1=http://a:2380,s2=http://b:2380";
  EXPECT_TRUE(AgentsOrSelf({}, *c, "x").empty());
}

}  // namespace
}  // namespace snapshot
