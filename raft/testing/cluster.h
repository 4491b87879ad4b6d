// Test helpers: clusters of EmbeddedNodes on 127.0.0.1 (temporary
// directories and ports come from base/testing.h). For tests only.
#ifndef SNAPSHOT_AGENT_RAFT_TESTING_CLUSTER_H_
#define SNAPSHOT_AGENT_RAFT_TESTING_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/testing.h"
#include "raft/embedded_node.h"

namespace snapshot {
namespace testing {

// A StateOpener over a copy of `bytes`.
StateOpener OpenerOf(std::string bytes);

// N nodes with ids 1..N on 127.0.0.1, each with its own data directory,
// short timeouts, and a small snapshot threshold so that the engine's own
// snapshots and InstallSnapshot are exercised.
class Cluster {
 public:
  explicit Cluster(int n, unsigned snapshot_threshold = 64);
  ~Cluster();

  // Starts node i (0-based) with the cluster's configuration.
  absl::Status StartNode(int i);
  void StopNode(int i);
  absl::Status StartAll();

  EmbeddedNode* node(int i) { return nodes_[i].get(); }
  const EmbeddedNodeConfig& config(int i) const { return configs_[i]; }
  int size() const { return static_cast<int>(configs_.size()); }

  // Index of the running node that is leader, once all running nodes agree
  // on one; -1 if none before the deadline.
  int WaitForLeader(absl::Duration timeout = absl::Seconds(15));
  // Waits until every running node has applied the same index and holds the
  // same state digest.
  absl::Status WaitForConvergence(absl::Duration timeout = absl::Seconds(20));

 private:
  TempDir dir_;
  std::vector<EmbeddedNodeConfig> configs_;
  std::vector<std::unique_ptr<EmbeddedNode>> nodes_;
};

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_TESTING_CLUSTER_H_
