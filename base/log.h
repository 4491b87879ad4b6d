// Structured log lines on stderr, one event per line, in one of two forms:
//
//   text (logfmt):
//     ts=2026-11-26T09:35:04.123Z level=info msg=rpc method=TakeSnapshot bytes=1042
//   json:
//     {"ts":"2026-11-26T09:35:04.123Z","level":"info","msg":"rpc","method":"TakeSnapshot","bytes":1042}
//
// In text form a value is written bare when it is non-empty and made only of
// printable ASCII other than space, '"', '=' and '\'; otherwise it is
// double-quoted with '"', '\' escaped and control or non-ASCII bytes written
// as \n, \t or \xNN, so that every line parses back to the exact bytes. In
// JSON, strings that are not valid UTF-8 have their bad bytes replaced by
// U+FFFD. Numbers and booleans are written unquoted in both forms.
//
//   Log(LogLevel::kInfo, "rpc", {{"method", "TakeSnapshot"}, {"bytes", n}});
//
// Threading: Log may be called from any thread; each line is written with one
// write(2), so lines never interleave. SetLogOptions is meant for start-up,
// before other threads log (it is safe, but lines logged meanwhile may use
// either setting).
#ifndef SNAPSHOT_AGENT_BASE_LOG_H_
#define SNAPSHOT_AGENT_BASE_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace snapshot {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kText, kJson };

// One key=value field. Construct from strings, integers, doubles or bools.
class LogField {
 public:
  LogField(absl::string_view key, absl::string_view v)
      : key_(key), kind_(kString), str_(v) {}
  LogField(absl::string_view key, const std::string& v)
      : key_(key), kind_(kString), str_(v) {}
  LogField(absl::string_view key, const char* v)
      : key_(key), kind_(kString), str_(v) {}
  LogField(absl::string_view key, bool v)
      : key_(key), kind_(kBool), num_(v ? "true" : "false") {}
  LogField(absl::string_view key, int v) : key_(key) { SetInt(v); }
  LogField(absl::string_view key, long v) : key_(key) { SetInt(v); }
  LogField(absl::string_view key, long long v) : key_(key) { SetInt(v); }
  LogField(absl::string_view key, unsigned v) : key_(key) { SetUint(v); }
  LogField(absl::string_view key, unsigned long v) : key_(key) { SetUint(v); }
  LogField(absl::string_view key, unsigned long long v) : key_(key) {
    SetUint(v);
  }
  LogField(absl::string_view key, double v);

  const std::string& key() const { return key_; }

 private:
  friend std::string FormatLogLine(LogFormat, absl::string_view, LogLevel,
                                   absl::string_view,
                                   const std::vector<LogField>&);
  void SetInt(long long v);
  void SetUint(unsigned long long v);
  enum Kind { kString, kNumber, kBool };
  std::string key_;
  Kind kind_ = kNumber;
  std::string str_;  // kString
  std::string num_;  // kNumber, kBool: already formatted
};

// Lines below `min` are dropped. Defaults: kInfo, kText.
void SetLogOptions(LogLevel min, LogFormat format);
bool LogEnabled(LogLevel level);

// Writes one line (if `level` is enabled).
void Log(LogLevel level, absl::string_view msg,
         const std::vector<LogField>& fields = {});

// The line Log would write, without the trailing newline; `ts` is the
// timestamp text (RFC 3339, UTC). For tests.
std::string FormatLogLine(LogFormat format, absl::string_view ts,
                          LogLevel level, absl::string_view msg,
                          const std::vector<LogField>& fields);

// Parses "debug", "info", "warning", "error" / "text", "json".
bool ParseLogLevel(absl::string_view s, LogLevel* out);
bool ParseLogFormat(absl::string_view s, LogFormat* out);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_LOG_H_
