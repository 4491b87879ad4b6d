// Which snapshots of the catalog to delete: a pure function of the catalog,
// the policy and the time, so that it can be tested over a year of
// snapshots with a fake clock.
//
// The policy keeps the union of (as restic's `forget` and sanoid do):
//   - the newest keep_last snapshots;
//   - for keep_hourly / keep_daily / keep_weekly / keep_monthly = n, the
//     newest snapshot of each of the n most recent hours / days / ISO weeks /
//     months (UTC) that have one;
// then, with a byte budget, drops the oldest of those kept until the total
// fits. Never deleted, whatever the policy: the newest snapshot, and any
// snapshot in use (a running fetch or restore). A policy of all zeros keeps
// everything.
//
// Threading: pure; no state.
#ifndef SNAPSHOT_AGENT_CORE_RETENTION_H_
#define SNAPSHOT_AGENT_CORE_RETENTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace snapshot {

struct RetentionPolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  uint64_t max_bytes = 0;  // 0: no budget

  bool KeepsEverything() const {
    return keep_last == 0 && keep_hourly == 0 && keep_daily == 0 && keep_weekly == 0 &&
           keep_monthly == 0 && max_bytes == 0;
  }
};

struct RetentionItem {
  std::string id;
  absl::Time created;
  uint64_t bytes = 0;
  bool in_use = false;
};

// The ids to delete, oldest first. `items` may come in any order.
std::vector<std::string> SnapshotsToDelete(const std::vector<RetentionItem>& items,
                                           const RetentionPolicy& policy);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_RETENTION_H_
