#include "raft/testing/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace snapshot {
namespace testing {

StateOpener OpenerOf(std::string bytes) {
  auto shared = std::make_shared<std::string>(std::move(bytes));
  return [shared]() -> absl::StatusOr<std::unique_ptr<ByteSource>> {
    return std::unique_ptr<ByteSource>(new StringSource(*shared));
  };
}

Cluster::Cluster(int n, unsigned snapshot_threshold) {
  std::vector<Member> peers;
  for (int i = 0; i < n; ++i) {
    Member m;
    m.id = static_cast<uint64_t>(i + 1);
    m.raft_address = absl::StrCat("127.0.0.1:", FreePort());
    m.agent_address = absl::StrCat("127.0.0.1:", 18000 + i);
    peers.push_back(m);
  }
  for (int i = 0; i < n; ++i) {
    EmbeddedNodeConfig c;
    c.id = peers[i].id;
    c.raft_address = peers[i].raft_address;
    c.agent_address = peers[i].agent_address;
    c.data_dir = absl::StrCat(dir_.path(), "/node", i + 1);
    c.peers = peers;
    c.election_timeout_ms = 500;
    c.heartbeat_timeout_ms = 50;
    c.install_snapshot_timeout_ms = 3000;
    c.snapshot_threshold = snapshot_threshold;
    c.snapshot_trailing = snapshot_threshold / 2;
    configs_.push_back(c);
  }
  nodes_.resize(n);
}

Cluster::~Cluster() {
  for (auto& n : nodes_) n.reset();
}

absl::Status Cluster::StartNode(int i) {
  auto node = EmbeddedNode::Start(configs_[i]);
  if (!node.ok()) return node.status();
  nodes_[i] = std::move(*node);
  return absl::OkStatus();
}

void Cluster::StopNode(int i) { nodes_[i].reset(); }

absl::Status Cluster::StartAll() {
  for (int i = 0; i < size(); ++i) {
    absl::Status s = StartNode(i);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

int Cluster::WaitForLeader(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int leader = -1;
    bool agreed = true;
    uint64_t leader_id = 0;
    for (int i = 0; i < size(); ++i) {
      if (!nodes_[i]) continue;
      auto s = nodes_[i]->Status(absl::Now() + absl::Seconds(10));
      if (!s.ok() || s->leader_id == 0) {
        agreed = false;
        break;
      }
      if (leader_id == 0) leader_id = s->leader_id;
      if (s->leader_id != leader_id) agreed = false;
      if (s->role == Role::kLeader) leader = i;
    }
    if (agreed && leader >= 0 &&
        static_cast<uint64_t>(leader + 1) == leader_id) {
      return leader;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return -1;
}

absl::Status Cluster::WaitForConvergence(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (absl::Now() < deadline) {
    std::vector<std::pair<uint64_t, Digest>> seen;
    bool ok = true;
    for (auto& n : nodes_) {
      if (!n) continue;
      auto d = n->StateDigest(absl::Now() + absl::Seconds(5));
      if (!d.ok()) {
        ok = false;
        break;
      }
      seen.push_back(*d);
    }
    if (ok && !seen.empty()) {
      bool same = true;
      for (const auto& s : seen) {
        if (s.first != seen[0].first || s.second != seen[0].second) same = false;
      }
      if (same) return absl::OkStatus();
      last.clear();
      for (const auto& s : seen) {
        absl::StrAppend(&last, " [applied ", s.first, " ", HexLower(s.second).substr(0, 12), "]");
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("nodes did not converge:", last));
}

}  // namespace testing
}  // namespace snapshot
