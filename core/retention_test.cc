#include "core/retention.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace snapshot {
namespace {

// A catalog that gets a snapshot every `every` for `span`, with retention
// applied after each one (as the agent does); returns what is left.
std::vector<RetentionItem> Simulate(absl::Time start, absl::Duration every,
                                    absl::Duration span, const RetentionPolicy& p,
                                    uint64_t bytes = 100) {
  std::vector<RetentionItem> cat;
  int seq = 0;
  for (absl::Time now = start; now < start + span; now += every) {
    cat.push_back({absl::StrCat("s", seq++), now, bytes, false});
    std::vector<std::string> del = SnapshotsToDelete(cat, p);
    std::set<std::string> gone(del.begin(), del.end());
    std::vector<RetentionItem> left;
    for (auto& i : cat) {
      if (!gone.count(i.id)) left.push_back(i);
    }
    cat = left;
  }
  return cat;
}

absl::Time At(int y, int m, int d, int h = 0) {
  return absl::FromCivil(absl::CivilHour(y, m, d, h), absl::UTCTimeZone());
}

TEST(Retention, AYearOfHourlySnapshotsKeepsEachTier) {
  RetentionPolicy p;
  p.keep_last = 5;
  p.keep_hourly = 24;
  p.keep_daily = 7;
  p.keep_weekly = 4;
  p.keep_monthly = 12;
  const absl::Time start = At(2026, 1, 1);
  auto left = Simulate(start, absl::Hours(1), absl::Hours(24 * 365), p);
  // The last 24 hours hold 24 snapshots (keep_last's 5 among them); then one
  // per day for 6 more days, one per week, one per month. Tiers overlap,
  // so the total is at most their sum and at least the largest.
  EXPECT_GE(left.size(), 24u);
  EXPECT_LE(left.size(), 5u + 24 + 7 + 4 + 12);
  std::map<int64_t, int> per_month;
  std::set<int64_t> days, weeks;
  absl::Time newest = absl::InfinitePast();
  for (const auto& i : left) {
    const absl::CivilSecond c = absl::ToCivilSecond(i.created, absl::UTCTimeZone());
    per_month[c.year() * 12 + c.month()]++;
    days.insert(absl::ToUnixSeconds(i.created) / 86400);
    newest = std::max(newest, i.created);
  }
  EXPECT_EQ(newest, start + absl::Hours(24 * 365 - 1));
  EXPECT_EQ(per_month.size(), 12u) << "one per month for a year";
  EXPECT_GE(days.size(), 7u);
  // The oldest kept is about a year old (the 12th month back).
  absl::Time oldest = absl::InfiniteFuture();
  for (const auto& i : left) oldest = std::min(oldest, i.created);
  EXPECT_LT(oldest, start + absl::Hours(24 * 40));
}

TEST(Retention, KeepLastOnlyAndEverything) {
  RetentionPolicy p;
  p.keep_last = 3;
  auto left = Simulate(At(2026, 3, 1), absl::Minutes(10), absl::Hours(10), p);
  ASSERT_EQ(left.size(), 3u);
  RetentionPolicy all;  // zeros: keep everything
  EXPECT_EQ(Simulate(At(2026, 3, 1), absl::Minutes(10), absl::Hours(10), all).size(), 60u);
}

TEST(Retention, ByteBudgetDropsOldestButNeverTheNewestOrInUse) {
  std::vector<RetentionItem> items;
  for (int i = 0; i < 10; ++i) {
    items.push_back({absl::StrCat("s", i), At(2026, 5, 1, i), 100, false});
  }
  items[1].in_use = true;  // an old one, being fetched
  RetentionPolicy p;
  p.max_bytes = 350;
  auto del = SnapshotsToDelete(items, p);
  // s1 (in use) stays and counts against the budget: s9, s8 and s1 fit.
  EXPECT_EQ(del, (std::vector<std::string>{"s0", "s2", "s3", "s4", "s5", "s6", "s7"}));
  // A budget smaller than the newest snapshot still keeps the newest.
  p.max_bytes = 10;
  del = SnapshotsToDelete(items, p);
  EXPECT_EQ(del.size(), 8u);
  EXPECT_EQ(std::count(del.begin(), del.end(), "s9"), 0);
  EXPECT_EQ(std::count(del.begin(), del.end(), "s1"), 0);
}

TEST(Retention, InUseIsKeptAndOrderOfInputDoesNotMatter) {
  std::vector<RetentionItem> items;
  for (int i = 9; i >= 0; --i) {  // newest first on input
    items.push_back({absl::StrCat("s", i), At(2026, 6, 1, i), 1, i == 2});
  }
  RetentionPolicy p;
  p.keep_last = 2;
  auto del = SnapshotsToDelete(items, p);
  EXPECT_EQ(del, (std::vector<std::string>{"s0", "s1", "s3", "s4", "s5", "s6", "s7"}));
  EXPECT_TRUE(SnapshotsToDelete({}, p).empty());
}

TEST(Retention, DailyTierPicksTheNewestOfEachDay) {
  std::vector<RetentionItem> items;
  // Three days, four snapshots a day.
  for (int d = 1; d <= 3; ++d) {
    for (int h : {1, 7, 13, 19}) {
      items.push_back({absl::StrCat("d", d, "h", h), At(2026, 7, d, h), 1, false});
    }
  }
  RetentionPolicy p;
  p.keep_daily = 2;
  auto del = SnapshotsToDelete(items, p);
  std::set<std::string> gone(del.begin(), del.end());
  EXPECT_FALSE(gone.count("d3h19"));
  EXPECT_FALSE(gone.count("d2h19"));
  EXPECT_TRUE(gone.count("d1h19"));
  EXPECT_EQ(del.size(), 10u);
}

}  // namespace
}  // namespace snapshot
