#include "base/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace snapshot {
namespace {

TEST(Log, TextQuotesWhatWouldNotParse) {
  std::string line = FormatLogLine(
      LogFormat::kText, "2026-01-02T03:04:05.678Z", LogLevel::kWarning, "rpc",
      {{"method", "Take"},
       {"message", "missing \"authorization: Bearer <token>\" metadata"},
       {"empty", ""},
       {"eq", "a=b"},
       {"bytes", uint64_t{42}},
       {"neg", -3},
       {"ok", true},
       {"bin", std::string("\xff\n\\", 3)}});
  EXPECT_EQ(line,
            "ts=2026-01-02T03:04:05.678Z level=warning msg=rpc method=Take "
            "message=\"missing \\\"authorization: Bearer <token>\\\" metadata\" "
            "empty=\"\" eq=\"a=b\" bytes=42 neg=-3 ok=true bin=\"\\xff\\n\\\\\"");
}

TEST(Log, JsonIsValidJsonEvenForInvalidUtf8) {
  std::string line = FormatLogLine(
      LogFormat::kJson, "2026-01-02T03:04:05.678Z", LogLevel::kInfo, "a \"b\"",
      {{"bytes", 7}, {"duration_ms", 1.5}, {"bin", std::string("\xfe\xff\x01", 3)},
       {"utf8", "caf\xc3\xa9"}});
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "a \"b\"");
  EXPECT_EQ(j["bytes"], 7);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 1.5);
  EXPECT_EQ(j["bin"], "\xef\xbf\xbd\xef\xbf\xbd\x01");
  EXPECT_EQ(j["utf8"], "caf\xc3\xa9");
}

TEST(Log, LevelsFilter) {
  SetLogOptions(LogLevel::kWarning, LogFormat::kText);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  SetLogOptions(LogLevel::kInfo, LogFormat::kText);
  EXPECT_TRUE(LogEnabled(LogLevel::kInfo));
  LogLevel l;
  EXPECT_TRUE(ParseLogLevel("debug", &l));
  EXPECT_EQ(l, LogLevel::kDebug);
  EXPECT_FALSE(ParseLogLevel("loud", &l));
  LogFormat f;
  EXPECT_TRUE(ParseLogFormat("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_FALSE(ParseLogFormat("xml", &f));
}

}  // namespace
}  // namespace snapshot
