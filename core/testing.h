// Test helpers for core/: a RaftNode whose state is a string. For tests only.
#ifndef SNAPSHOT_AGENT_CORE_TESTING_H_
#define SNAPSHOT_AGENT_CORE_TESTING_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/io.h"
#include "base/status_macros.h"
#include "engine/node.h"

namespace snapshot {
namespace testing {

// A node of engine `engine` whose state is `state`. Every snapshot has the
// next index (as a Raft barrier's would); a restore replaces `state`.
// `events` records "snapshot", "restore" (a restore starts) and "commit"
// (it passed its BeforeCommit) in order; `leader` is what CheckLeader (and
// so CheckRestore) answers. Snapshot and Restore may run on two threads at
// once; tests change the fields while neither runs.
class StringNode : public RaftNode {
 public:
  explicit StringNode(std::string engine = "test", std::string state = "hello")
      : state(std::move(state)), engine_(std::move(engine)) {}
  const char* engine() const override { return engine_.c_str(); }
  absl::StatusOr<NodeStatus> Status(absl::Time) override { return NodeStatus{}; }
  absl::Status CheckLeader(absl::Time) override { return leader; }
  absl::StatusOr<CapturedSnapshot> Snapshot(const SnapshotOptions&, absl::Time) override {
    Event("snapshot");
    std::lock_guard<std::mutex> l(mu);
    CapturedSnapshot c;
    c.meta.index = ++index;
    c.meta.term = 1;
    c.meta.id = absl::StrCat("1-", index, "-0");
    c.meta.engine = engine_;
    c.meta.size = state.size();
    c.state = std::make_unique<StringSource>(state);
    return c;
  }
  absl::StatusOr<RestoreResult> Restore(const SnapshotMeta&, const StateOpener& open,
                                        absl::Time, const BeforeCommit& before_commit) override {
    Event("restore");
    absl::StatusOr<std::unique_ptr<ByteSource>> src = open();
    if (!src.ok()) return src.status();
    std::string got;
    char buf[65536];
    for (;;) {
      absl::StatusOr<size_t> n = (*src)->Read(buf, sizeof(buf));
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      got.append(buf, *n);
    }
    if (before_commit) SA_RETURN_IF_ERROR(before_commit());
    Event("commit");
    std::lock_guard<std::mutex> l(mu);
    state = std::move(got);
    return RestoreResult{++index};
  }
  // Records an event; thread-safe (the safety snapshot runs beside a restore).
  void Event(std::string e) {
    std::lock_guard<std::mutex> l(mu);
    events.push_back(std::move(e));
  }
  std::vector<std::string> Events() {
    std::lock_guard<std::mutex> l(mu);
    return events;
  }

  std::mutex mu;
  std::string state;       // guarded by mu while a restore runs
  uint64_t index = 0;      // guarded by mu while a restore runs
  absl::Status leader = absl::OkStatus();
  std::vector<std::string> events;  // guarded by mu

 private:
  std::string engine_;
};

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_TESTING_H_
