// Test helpers for core/: a RaftNode whose state is a string. For tests only.
#ifndef SNAPSHOT_AGENT_CORE_TESTING_H_
#define SNAPSHOT_AGENT_CORE_TESTING_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/io.h"
#include "engine/node.h"

namespace snapshot {
namespace testing {

// A node of engine `engine` whose state is `state`. Every snapshot has the
// next index (as a Raft barrier's would); a restore replaces `state`.
// `events` records "snapshot" and "restore" in order; `leader` is what
// CheckLeader (and so CheckRestore) answers. Not thread-safe.
class StringNode : public RaftNode {
 public:
  explicit StringNode(std::string engine = "test", std::string state = "hello")
      : state(std::move(state)), engine_(std::move(engine)) {}
  const char* engine() const override { return engine_.c_str(); }
  absl::StatusOr<NodeStatus> Status(absl::Time) override { return NodeStatus{}; }
  absl::Status CheckLeader(absl::Time) override { return leader; }
  absl::StatusOr<CapturedSnapshot> Snapshot(const SnapshotOptions&, absl::Time) override {
    events.push_back("snapshot");
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
                                        absl::Time) override {
    events.push_back("restore");
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
    state = std::move(got);
    return RestoreResult{++index};
  }

  std::string state;
  uint64_t index = 0;
  absl::Status leader = absl::OkStatus();
  std::vector<std::string> events;

 private:
  std::string engine_;
};

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CORE_TESTING_H_
