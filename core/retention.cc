#include "core/retention.h"

#include <algorithm>
#include <set>

namespace snapshot {
namespace {

// Bucket keys (UTC): distinct for distinct hours, days, ISO weeks, months.
int64_t HourKey(absl::Time t) { return absl::ToUnixSeconds(t) / 3600; }
int64_t DayKey(absl::Time t) { return absl::ToUnixSeconds(t) / 86400; }
int64_t WeekKey(absl::Time t) {
  // Days since Monday 1970-01-05, in weeks (the epoch was a Thursday).
  return (DayKey(t) - 4 + 7 * 1000000) / 7;
}
int64_t MonthKey(absl::Time t) {
  const absl::CivilSecond c = absl::ToCivilSecond(t, absl::UTCTimeZone());
  return c.year() * 12 + (c.month() - 1);
}

}  // namespace

std::vector<std::string> SnapshotsToDelete(const std::vector<RetentionItem>& items,
                                           const RetentionPolicy& policy) {
  if (items.empty() || policy.KeepsEverything()) return {};
  std::vector<const RetentionItem*> newest_first;
  for (const auto& i : items) newest_first.push_back(&i);
  std::sort(newest_first.begin(), newest_first.end(),
            [](const RetentionItem* a, const RetentionItem* b) {
              return a->created != b->created ? a->created > b->created : a->id > b->id;
            });
  const size_t n = newest_first.size();
  std::vector<bool> keep(n, false);
  const bool counts = policy.keep_last || policy.keep_hourly || policy.keep_daily ||
                      policy.keep_weekly || policy.keep_monthly;
  if (!counts) keep.assign(n, true);  // only a byte budget
  for (size_t i = 0; i < n && i < static_cast<size_t>(policy.keep_last); ++i) keep[i] = true;
  auto tier = [&](int count, int64_t (*key)(absl::Time)) {
    std::set<int64_t> seen;
    for (size_t i = 0; i < n && static_cast<int>(seen.size()) < count; ++i) {
      if (seen.insert(key(newest_first[i]->created)).second) keep[i] = true;
    }
  };
  tier(policy.keep_hourly, HourKey);
  tier(policy.keep_daily, DayKey);
  tier(policy.keep_weekly, WeekKey);
  tier(policy.keep_monthly, MonthKey);
  keep[0] = true;  // the newest, always
  for (size_t i = 0; i < n; ++i) {
    if (newest_first[i]->in_use) keep[i] = true;
  }
  if (policy.max_bytes > 0) {
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
      if (keep[i]) total += newest_first[i]->bytes;
    }
    // Oldest kept first; the newest and those in use stay even over budget.
    for (size_t i = n; i-- > 1 && total > policy.max_bytes;) {
      if (keep[i] && !newest_first[i]->in_use) {
        keep[i] = false;
        total -= newest_first[i]->bytes;
      }
    }
  }
  std::vector<std::string> out;
  for (size_t i = n; i-- > 0;) {
    if (!keep[i]) out.push_back(newest_first[i]->id);
  }
  return out;
}

}  // namespace snapshot
