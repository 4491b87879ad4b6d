#include "etcd/etcd_node.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "etcd/cluster_restore.h"
#include "etcd/snapshot_stream.h"

namespace snapshot {
namespace {

// Restore's error without a supervised etcd.
absl::Status Unsupervised() {
  return absl::FailedPreconditionError(
      "etcd has no online restore: this agent restores only in supervised "
      "mode (--etcd-exec, the agent runs etcd), where it stops every member, "
      "rebuilds their data from the snapshot and starts them again. Run the "
      "agents supervised, or restore by hand with etcdctl snapshot restore "
      "(docs/etcd-engine.md)");
}

// state.bin of an etcd snapshot, produced from etcd's Maintenance.Snapshot
// stream as it arrives, under the stream's rules (etcd/snapshot_stream.h):
// any breach is an error from Read(), so the archive being written fails.
class EtcdSnapshotSource : public ByteSource {
 public:
  EtcdSnapshotSource(std::unique_ptr<EtcdClient::SnapshotStream> stream,
                     etcdserverpb::SnapshotResponse first)
      : stream_(std::move(stream)), rules_(first.blob().size(), first.remaining_bytes()) {
    error_ = Take(std::move(first));
  }
  ~EtcdSnapshotSource() override {
    if (!done_) stream_->Cancel();
  }

  uint64_t state_size() const { return rules_.state_size(); }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    SA_RETURN_IF_ERROR(error_);
    while (pos_ == blob_.size()) {
      if (done_) return 0;
      absl::Status s = Next();
      if (!s.ok()) {
        error_ = s;
        stream_->Cancel();
        return s;
      }
    }
    size_t k = std::min(n, blob_.size() - pos_);
    memcpy(buf, blob_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  absl::Status Take(etcdserverpb::SnapshotResponse msg) {
    SA_RETURN_IF_ERROR(rules_.Accept(msg.blob(), msg.remaining_bytes()));
    blob_ = std::move(*msg.mutable_blob());
    pos_ = 0;
    return absl::OkStatus();
  }

  absl::Status Next() {
    etcdserverpb::SnapshotResponse msg;
    if (!stream_->Next(&msg)) {
      absl::Status end = stream_->Finish();
      done_ = true;
      if (!end.ok()) return end;
      return rules_.End();
    }
    SA_RETURN_IF_ERROR(Take(std::move(msg)));
    if (!rules_.complete()) return absl::OkStatus();
    // The hash came: the stream must end here, cleanly.
    etcdserverpb::SnapshotResponse extra;
    if (stream_->Next(&extra)) return rules_.Accept(extra.blob(), extra.remaining_bytes());
    done_ = true;
    return stream_->Finish();
  }

  std::unique_ptr<EtcdClient::SnapshotStream> stream_;
  EtcdSnapshotStream rules_;
  std::string blob_;
  size_t pos_ = 0;
  bool done_ = false;
  absl::Status error_;
};

uint64_t NowMillis() {
  return static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseEtcdAgents(
    absl::string_view spec) {
  std::map<std::string, std::string> out;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    size_t eq = item.find('=');
    if (eq == absl::string_view::npos || eq == 0 ||
        item.substr(eq + 1).find(':') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed agent \"", item,
          "\": expected NAME=HOST:PORT (etcd member name = its agent's address)"));
    }
    if (!out.emplace(std::string(item.substr(0, eq)),
                     std::string(item.substr(eq + 1)))
             .second) {
      return absl::InvalidArgumentError(
          absl::StrCat("member \"", item.substr(0, eq), "\" is listed twice"));
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<EtcdNode>> EtcdNode::Create(
    EtcdNodeConfig config, ClusterRestore* restore) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> client,
                      EtcdClient::Create(config.client));
  return std::unique_ptr<EtcdNode>(
      new EtcdNode(std::move(config), std::move(client), restore));
}

absl::StatusOr<bool> EtcdNode::HoldsNoState(absl::Time deadline) {
  SA_ASSIGN_OR_RETURN(etcdserverpb::StatusResponse st, client_->Status(deadline));
  return st.header().revision() <= 1;
}

absl::StatusOr<NodeStatus> EtcdNode::Status(absl::Time deadline) {
  SA_ASSIGN_OR_RETURN(etcdserverpb::StatusResponse st, client_->Status(deadline));
  SA_ASSIGN_OR_RETURN(etcdserverpb::MemberListResponse ml,
                      client_->MemberList(deadline));
  NodeStatus s;
  s.id = st.header().member_id();
  s.role = st.leader() == 0 ? Role::kCandidate
           : st.leader() == s.id ? Role::kLeader
                                 : Role::kFollower;
  s.leader_id = st.leader();
  s.term = st.raftterm();
  s.commit_index = st.raftindex();
  s.applied_index = st.raftappliedindex();
  s.last_index = st.raftindex();
  for (const auto& m : ml.members()) {
    Member mem;
    mem.id = m.id();
    mem.raft_address = absl::StrJoin(m.peerurls(), ",");
    auto agent = config_.agents.find(m.name());
    if (agent != config_.agents.end()) mem.agent_address = agent->second;
    mem.voter = !m.islearner();
    if (m.id() == s.id) s.raft_address = mem.raft_address;
    if (m.id() == s.leader_id) {
      s.leader_raft_address = mem.raft_address;
      s.leader_agent_address = mem.agent_address;
    }
    s.members.push_back(std::move(mem));
  }
  return s;
}

absl::Status EtcdNode::CheckLeader(absl::Time deadline) {
  return client_->Status(deadline).status();
}

absl::Status EtcdNode::CheckRestore(absl::Time deadline) {
  if (restore_ == nullptr) return Unsupervised();
  return restore_->CheckReady(deadline);
}

absl::StatusOr<CapturedSnapshot> EtcdNode::Snapshot(
    const SnapshotOptions& /*options: every member serves snapshots*/,
    absl::Time deadline) {
  // The index first: the backend copy etcd then makes holds at least
  // everything applied up to it.
  SA_ASSIGN_OR_RETURN(etcdserverpb::StatusResponse st, client_->Status(deadline));
  SA_ASSIGN_OR_RETURN(etcdserverpb::MemberListResponse ml,
                      client_->MemberList(deadline));
  SA_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient::SnapshotStream> stream,
                      client_->Snapshot());
  etcdserverpb::SnapshotResponse first;
  if (!stream->Next(&first)) {
    absl::Status end = stream->Finish();
    return end.ok() ? absl::DataLossError(
                          "etcd's snapshot stream ended before any data")
                    : end;
  }
  auto source = std::make_unique<EtcdSnapshotSource>(std::move(stream),
                                                     std::move(first));
  CapturedSnapshot out;
  SnapshotMeta& m = out.meta;
  m.version = 1;
  m.engine = kEngineEtcd;
  m.index = st.raftappliedindex();
  m.term = st.raftterm();
  m.id = absl::StrCat(m.term, "-", m.index, "-", NowMillis());
  m.size = source->state_size();
  const uint64_t self = st.header().member_id();
  for (const auto& mem : ml.members()) {
    Server srv;
    srv.id = mem.name().empty() ? EtcdId(mem.id()) : mem.name();
    srv.address = absl::StrJoin(mem.peerurls(), ",");
    srv.suffrage = mem.islearner() ? 1 : 0;
    m.servers.push_back(std::move(srv));
    if (mem.id() == self) m.etcd.member_name = mem.name();
  }
  m.etcd.cluster_id = EtcdId(st.header().cluster_id());
  m.etcd.member_id = EtcdId(self);
  m.etcd.leader = st.leader() == self;
  m.etcd.revision = st.header().revision();
  m.etcd.version = st.version();
  // A follower's backend may trail the leader's by a few entries.
  out.stale = !m.etcd.leader;
  out.state = std::move(source);
  return out;
}

absl::StatusOr<RestoreResult> EtcdNode::Restore(const SnapshotMeta& meta,
                                                const StateOpener& open_state,
                                                absl::Time deadline,
                                                const BeforeCommit& before_commit) {
  return RestoreForwarded(meta, open_state, nullptr, deadline, before_commit);
}

absl::StatusOr<std::unique_ptr<StateForward>> EtcdNode::ForwardState(const SnapshotMeta& meta,
                                                                     absl::Time deadline) {
  // Anything else is refused once verified, with Restore's message.
  if (restore_ == nullptr || meta.engine != kEngineEtcd) return std::unique_ptr<StateForward>();
  return restore_->BeginForward(meta, deadline);
}

absl::StatusOr<RestoreResult> EtcdNode::RestoreForwarded(const SnapshotMeta& meta,
                                                         const StateOpener& open_state,
                                                         StateForward* forwarded,
                                                         absl::Time deadline,
                                                         const BeforeCommit& before_commit) {
  // (Run checks that a restore may start, as BeginForward did.)
  if (restore_ == nullptr) return Unsupervised();
  if (meta.engine != kEngineEtcd) {
    return absl::FailedPreconditionError(
        "this archive is not an etcd snapshot (meta.json has no Engine "
        "\"etcd\"); the etcd engine restores only etcd snapshots; nothing "
        "changed");
  }
  return restore_->Run(meta, open_state, forwarded, deadline, before_commit);
}

}  // namespace snapshot
