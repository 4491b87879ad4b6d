#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/utf8.h"

namespace snapshot {
namespace {

std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

bool IsBare(absl::string_view v) {
  if (v.empty()) return false;
  for (unsigned char c : v) {
    if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\') {
      return false;
    }
  }
  return true;
}

void AppendLogfmtValue(absl::string_view v, std::string* out) {
  if (IsBare(v)) {
    out->append(v.data(), v.size());
    return;
  }
  out->push_back('"');
  for (unsigned char c : v) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < ' ' || c >= 0x7f) {
          absl::StrAppendFormat(out, "\\x%02x", c);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendJsonString(absl::string_view v, std::string* out) {
  out->push_back('"');
  while (!v.empty()) {
    const unsigned char c = static_cast<unsigned char>(v[0]);
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(v);
      if (n == 0) {
        out->append("\xef\xbf\xbd");  // U+FFFD
        n = 1;
      } else {
        out->append(v.data(), n);
      }
      v.remove_prefix(n);
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    v.remove_prefix(1);
  }
  out->push_back('"');
}

}  // namespace

LogField::LogField(absl::string_view key, double v)
    : key_(key), kind_(kNumber), num_(absl::StrFormat("%.3f", v)) {}

void LogField::SetInt(long long v) {
  kind_ = kNumber;
  num_ = absl::StrCat(v);
}

void LogField::SetUint(unsigned long long v) {
  kind_ = kNumber;
  num_ = absl::StrCat(v);
}

void SetLogOptions(LogLevel min, LogFormat format) {
  g_min_level = static_cast<int>(min);
  g_format = static_cast<int>(format);
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_min_level.load();
}

std::string FormatLogLine(LogFormat format, absl::string_view ts,
                          LogLevel level, absl::string_view msg,
                          const std::vector<LogField>& fields) {
  std::string line;
  if (format == LogFormat::kJson) {
    line = "{\"ts\":";
    AppendJsonString(ts, &line);
    absl::StrAppend(&line, ",\"level\":\"", LevelName(level), "\",\"msg\":");
    AppendJsonString(msg, &line);
    for (const LogField& f : fields) {
      line.push_back(',');
      AppendJsonString(f.key_, &line);
      line.push_back(':');
      if (f.kind_ == LogField::kString) {
        AppendJsonString(f.str_, &line);
      } else {
        line.append(f.num_);
      }
    }
    line.push_back('}');
    return line;
  }
  absl::StrAppend(&line, "ts=", ts, " level=", LevelName(level), " msg=");
  AppendLogfmtValue(msg, &line);
  for (const LogField& f : fields) {
    line.push_back(' ');
    line.append(f.key_);
    line.push_back('=');
    if (f.kind_ == LogField::kString) {
      AppendLogfmtValue(f.str_, &line);
    } else {
      line.append(f.num_);
    }
  }
  return line;
}

void Log(LogLevel level, absl::string_view msg,
         const std::vector<LogField>& fields) {
  if (!LogEnabled(level)) return;
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                          absl::UTCTimeZone());
  std::string line =
      FormatLogLine(static_cast<LogFormat>(g_format.load()), ts, level, msg,
                    fields);
  line.push_back('\n');
  // One write: lines from several threads never interleave.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n <= 0) break;  // nowhere to report it
    p += n;
    left -= static_cast<size_t>(n);
  }
}

bool ParseLogLevel(absl::string_view s, LogLevel* out) {
  if (s == "debug") {
    *out = LogLevel::kDebug;
  } else if (s == "info") {
    *out = LogLevel::kInfo;
  } else if (s == "warning") {
    *out = LogLevel::kWarning;
  } else if (s == "error") {
    *out = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

bool ParseLogFormat(absl::string_view s, LogFormat* out) {
  if (s == "text") {
    *out = LogFormat::kText;
  } else if (s == "json") {
    *out = LogFormat::kJson;
  } else {
    return false;
  }
  return true;
}

}  // namespace snapshot
