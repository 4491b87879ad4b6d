#include "base/failpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/log.h"

namespace snapshot {
namespace {

std::atomic<bool> g_enabled{false};

const std::map<std::string, std::string>& Failpoints() {
  static const auto* points = [] {
    auto* m = new std::map<std::string, std::string>();
    const char* env = getenv("SNAPSHOT_AGENT_FAILPOINTS");
    if (env == nullptr) return m;
    for (absl::string_view item : absl::StrSplit(env, ',', absl::SkipEmpty())) {
      size_t eq = item.find('=');
      if (eq == absl::string_view::npos) continue;
      (*m)[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    }
    return m;
  }();
  return *points;
}

}  // namespace

void EnableFailpoints() { g_enabled = true; }

void Failpoint(absl::string_view name) {
  if (!g_enabled) return;
  const auto& points = Failpoints();
  if (points.empty()) return;
  auto it = points.find(std::string(name));
  if (it == points.end()) return;
  Log(LogLevel::kWarning, "failpoint", {{"name", name}, {"action", it->second}});
  int ms = 0;
  if (it->second == "kill") {
    kill(getpid(), SIGKILL);
  } else if (it->second.rfind("sleep:", 0) == 0 &&
             absl::SimpleAtoi(it->second.substr(6), &ms)) {
    absl::SleepFor(absl::Milliseconds(ms));
  }
}

}  // namespace snapshot
