// Consecutive failures of a recurring job (the schedule, the remote passes)
// and the health they imply: healthy until `max_failures` failures in a row,
// healthy again after one success. A change of health is logged (as "WHAT is
// unhealthy..." / "WHAT is healthy again") and reported to `on_health`.
//
// Threading: used by one thread at a time (the job's own). Header-only.
#ifndef SNAPSHOT_AGENT_CORE_FAILURE_STREAK_H_
#define SNAPSHOT_AGENT_CORE_FAILURE_STREAK_H_

#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace snapshot {

class FailureStreak {
 public:
  FailureStreak(std::string what, int max_failures, std::function<void(bool)> on_health)
      : what_(std::move(what)), max_failures_(max_failures), on_health_(std::move(on_health)) {}

  // Records one run; returns the failures in a row.
  int Record(bool ok) {
    failures_ = ok ? 0 : failures_ + 1;
    const bool healthy = failures_ < max_failures_;
    if (healthy != healthy_) {
      healthy_ = healthy;
      Log(healthy ? LogLevel::kInfo : LogLevel::kError,
          healthy ? absl::StrCat(what_, " is healthy again")
                  : absl::StrCat(what_, " is unhealthy: too many failures in a row"),
          {{"consecutive_failures", failures_}});
      on_health_(healthy);
    }
    return failures_;
  }

  int failures() const { return failures_; }

 private:
  const std::string what_;
  const int max_failures_;
  std::function<void(bool)> on_health_;
  int failures_ = 0;
  bool healthy_ = true;
};

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_FAILURE_STREAK_H_
