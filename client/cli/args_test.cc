#include "client/cli/args.h"

#include <cstdlib>
#include <vector>

#include "absl/flags/flag.h"
#include "gtest/gtest.h"

namespace snapshot {
namespace cli {
namespace {

absl::StatusOr<CommandLine> Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(Args, FlagsAnywhereInEitherSpellingAndForm) {
  auto cl = Parse({"--json", "save", "--chunk-size", "65536", "out.snap", "--level=fast",
                   "--token_file=t", "--", "--not-a-flag"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->command(), "save");
  EXPECT_EQ(cl->positional, (std::vector<std::string>{"save", "out.snap", "--not-a-flag"}));
  EXPECT_TRUE(absl::GetFlag(FLAGS_json));
  EXPECT_EQ(absl::GetFlag(FLAGS_chunk_size), 65536u);
  EXPECT_EQ(absl::GetFlag(FLAGS_level), "fast");
  EXPECT_EQ(absl::GetFlag(FLAGS_token_file), "t");
  EXPECT_TRUE(cl->given.count("token_file"));
  EXPECT_FALSE(cl->given.count("address"));
}

TEST(Args, MistakesAreInvalidArgumentAsTyped) {
  EXPECT_EQ(Parse({"--nope"}).status().code(), absl::StatusCode::kInvalidArgument);
  // absl's own flags are not snapshotctl's.
  EXPECT_EQ(Parse({"--flagfile=/etc/passwd"}).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = Parse({"--chunk-size=big"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("--chunk-size=big"), std::string::npos) << bad.status();
  EXPECT_EQ(Parse({"--json=maybe"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"list", "--limit"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Args, HelpAndVersionAreOurs) {
  auto cl = Parse({"fetch", "--help"});
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->help);
  EXPECT_FALSE(cl->version);
}

TEST(Args, TheEnvironmentOnlyWhenTheFlagIsNotGiven) {
  setenv("SNAPSHOTCTL_TEST_ADDRESS", "10.0.0.1:1", 1);
  auto given = Parse({"--address=1.2.3.4:5"});
  EXPECT_EQ(FlagOrEnv(*given, "address", "1.2.3.4:5", "SNAPSHOTCTL_TEST_ADDRESS"), "1.2.3.4:5");
  auto not_given = Parse({"status"});
  EXPECT_EQ(FlagOrEnv(*not_given, "address", "x", "SNAPSHOTCTL_TEST_ADDRESS"), "10.0.0.1:1");
  EXPECT_EQ(FlagOrEnv(*not_given, "address", "x", "SNAPSHOTCTL_TEST_UNSET", "dflt"), "dflt");
}

}  // namespace
}  // namespace cli
}  // namespace snapshot
