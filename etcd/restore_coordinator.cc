// ClusterRestore, the coordinator's side: prepare every member, stop every
// member, record the decision, then commit, check and finalize everywhere.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/failpoint.h"
#include "base/io.h"
#include "base/log.h"
#include "base/pipeline_sink.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "base/thread_name.h"
#include "etcd/cluster_restore.h"

namespace snapshot {
namespace {

constexpr size_t kChunk = 1 << 20;
// A prepare stream lasts as long as the upload it forwards, however slow
// (a member that takes nothing for the stall timeout is dropped, and the
// upload's idle and minimum-rate limits bound the rest); this bounds only a
// lost one.
constexpr absl::Duration kStreamDeadline = absl::Hours(24);
// From the state's SHA-256 to the member's answer (`etcdctl snapshot
// restore` of the database).
constexpr absl::Duration kPrepareTimeout = absl::Hours(1);

std::string RandomId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

// Runs `fn` for every member at once; returns "member: error" for failures.
std::vector<std::pair<std::string, absl::Status>> ForEach(
    const std::vector<std::string>& members,
    const std::function<absl::Status(const std::string&)>& fn) {
  std::vector<absl::Status> results(members.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < members.size(); ++i) {
    threads.emplace_back([&, i] {
      SetThreadName("sa-etcd-member");
      results[i] = fn(members[i]);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::pair<std::string, absl::Status>> failed;
  for (size_t i = 0; i < members.size(); ++i) {
    if (!results[i].ok()) failed.emplace_back(members[i], results[i]);
  }
  return failed;
}

std::string Describe(const std::vector<std::pair<std::string, absl::Status>>& f) {
  std::vector<std::string> parts;
  for (const auto& [m, s] : f) parts.push_back(absl::StrCat(m, ": ", s.message()));
  return absl::StrJoin(parts, "; ");
}

}  // namespace

// A restore's prepares, set up before its state arrives: this member's
// (claimed: no other restore can take it meanwhile) and one on every other
// member's agent, begun with the first bytes and fed through a queue of its
// own on a thread of its own, so that one slow member does not hold up the
// writer more than the queue allows, and the members receive at the same
// time; a watch drops a member that stops taking them.
class ClusterRestore::Forward : public StateForward {
 public:
  // Between a member's queue and its prepare stream, which it begins with
  // the first bytes — so that even connecting to the member's agent happens
  // on the queue's thread, under the stall watch — and how long the call in
  // progress has lasted.
  class PeerSink : public ByteSink {
   public:
    PeerSink(Participant* participant, const PrepareHeader& header)
        : participant_(participant), header_(header) {}
    absl::Status Write(absl::string_view data) override {
      Timed t(&writing_since_);
      SA_RETURN_IF_ERROR(Begin());
      return stream_->Write(data);
    }
    // Ends the prepare: the SHA-256, then the member's answer.
    absl::Status Finish(const std::string& sha256) {
      Timed t(&finishing_since_);
      SA_RETURN_IF_ERROR(Begin());
      return stream_->Finish(sha256);
    }
    absl::Duration Writing() const { return Since(writing_since_); }
    absl::Duration Finishing() const { return Since(finishing_since_); }

   private:
    class Timed {
     public:
      explicit Timed(std::atomic<int64_t>* since) : since_(since) {
        *since_ = absl::ToUnixNanos(absl::Now());
      }
      ~Timed() { *since_ = 0; }

     private:
      std::atomic<int64_t>* since_;
    };
    static absl::Duration Since(const std::atomic<int64_t>& since) {
      const int64_t t = since;
      return t == 0 ? absl::ZeroDuration() : absl::Now() - absl::FromUnixNanos(t);
    }
    absl::Status Begin() {
      if (stream_ != nullptr) return absl::OkStatus();
      SA_ASSIGN_OR_RETURN(stream_, participant_->BeginPrepare(header_, absl::Now() + kStreamDeadline));
      return absl::OkStatus();
    }

    Participant* participant_;
    const PrepareHeader header_;
    std::unique_ptr<Participant::PrepareStream> stream_;
    std::atomic<int64_t> writing_since_{0};
    std::atomic<int64_t> finishing_since_{0};
  };

  struct Peer {
    std::string member;
    std::unique_ptr<Participant> participant;
    std::unique_ptr<PeerSink> sink;
    std::unique_ptr<PipelineSink> pipe;
    // Dropped by the watch; `why` is written before `dropped` is set, and
    // read only after it is seen set.
    std::atomic<bool> dropped{false};
    std::string why;
  };

  explicit Forward(ClusterRestore* owner) : owner_(owner) {}
  ~Forward() override {
    {
      std::lock_guard<std::mutex> l(watch_mu_);
      watch_stop_ = true;
    }
    watch_cv_.notify_all();
    if (watch_.joinable()) watch_.join();
    for (auto& pp : peers) {
      Peer& p = *pp;
      // A prepare not finished is cancelled (the member drops what it
      // received), which also ends a Write blocked on a member that stopped
      // reading; then the queue's thread can be joined.
      p.participant->Cancel();
      p.pipe.reset();
      p.sink.reset();
      owner_->Unregister(p.participant.get());
    }
    own.reset();  // not finished: removed, this member free again
    std::lock_guard<std::mutex> l(owner_->mu_);
    if (owner_->coordinating_ == header.restore_id) owner_->coordinating_.clear();
  }

  absl::Status Write(absl::string_view data) override {
    written += data.size();
    for (auto& p : peers) {
      absl::Status s = p->pipe->Write(data);
      if (s.ok()) continue;
      if (p->dropped) return absl::UnavailableError(absl::StrCat(p->why, "; nothing changed"));
      return absl::Status(s.code(), absl::StrCat("sending the state to member ", p->member,
                                                 ": ", s.message(), "; nothing changed"));
    }
    return absl::OkStatus();
  }

  // Starts the stall watch over the members' streams.
  void Watch(absl::Duration stall_timeout) {
    stall_timeout_ = stall_timeout;
    watch_ = std::thread([this] {
      SetThreadName("sa-etcd-watch");
      std::unique_lock<std::mutex> l(watch_mu_);
      while (!watch_cv_.wait_for(l, std::chrono::milliseconds(200), [&] { return watch_stop_; })) {
        for (auto& p : peers) {
          if (p->dropped) continue;
          if (p->sink->Writing() > stall_timeout_) {
            p->why = absl::StrCat("the agent of member ", p->member, " took none of the state for ",
                                  absl::FormatDuration(stall_timeout_),
                                  " (stopped, or cut off from this agent?)");
          } else if (p->sink->Finishing() > kPrepareTimeout) {
            p->why = absl::StrCat("the agent of member ", p->member, " did not prepare within ",
                                  absl::FormatDuration(kPrepareTimeout));
          } else {
            continue;
          }
          Log(LogLevel::kWarning, "etcd restore: dropping a member that does not answer",
              {{"restore_id", header.restore_id}, {"member", p->member}, {"why", p->why}});
          p->dropped = true;
          p->participant->Cancel();  // its call fails: the queue's thread moves on
        }
      }
    });
  }

  void Verified(const Digest& d) override { sha256 = HexLower(d); }

  // Ends member `p`'s prepare: its queue, the SHA-256, its answer.
  absl::Status FinishPeer(Peer& p) {
    absl::Status s = p.pipe->Flush();
    if (s.ok()) s = p.sink->Finish(sha256);
    if (s.ok() || !p.dropped) return s;
    return absl::UnavailableError(p.why);
  }

  PrepareHeader header;
  etcdserverpb::MemberListResponse ml;
  std::vector<std::string> members;  // this one included
  std::unique_ptr<Prepare> own;
  std::vector<std::unique_ptr<Peer>> peers;  // complete before Watch
  uint64_t written = 0;
  std::string sha256;  // hex, once Verified

 private:
  ClusterRestore* owner_;
  absl::Duration stall_timeout_;
  std::thread watch_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;  // guarded by watch_mu_
};

absl::StatusOr<std::unique_ptr<StateForward>> ClusterRestore::BeginForward(
    const SnapshotMeta& meta, absl::Time deadline) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Forward> f, StartForward(meta, deadline));
  return std::unique_ptr<StateForward>(std::move(f));
}

absl::StatusOr<std::unique_ptr<ClusterRestore::Forward>> ClusterRestore::StartForward(
    const SnapshotMeta& meta, absl::Time deadline) {
  SA_RETURN_IF_ERROR(CheckReady(deadline));
  auto f = std::make_unique<Forward>(this);
  SA_ASSIGN_OR_RETURN(f->ml,
                      local_->MemberList(std::min(deadline, absl::Now() + absl::Seconds(10))));
  for (const auto& m : f->ml.members()) {
    if (m.name().empty()) {
      return absl::UnavailableError(absl::StrCat(
          "etcd member ", EtcdId(m.id()), " has not started yet; restore "
          "when every member runs"));
    }
    if (!config_.agents.count(m.name())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no agent is known for etcd member \"", m.name(),
          "\" (--etcd-agents): a restore needs the agent of every member"));
    }
    f->members.push_back(m.name());
  }
  if (std::find(f->members.begin(), f->members.end(), member()) == f->members.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this agent's etcd (--name ", member(), ") is not in the cluster's member list"));
  }
  PrepareHeader& header = f->header;
  header.restore_id = RandomId();
  header.coordinator = member();
  header.state_size = meta.size;
  header.snapshot_id = meta.id;
  SA_ASSIGN_OR_RETURN(f->own, BeginPrepare(header));
  {
    std::lock_guard<std::mutex> l(mu_);
    coordinating_ = header.restore_id;
  }
  for (const std::string& m : f->members) {
    if (m == member()) continue;
    auto p = std::make_unique<Forward::Peer>();
    p->member = m;
    SA_ASSIGN_OR_RETURN(p->participant, Connect(m));
    p->sink = std::make_unique<Forward::PeerSink>(p->participant.get(), header);
    p->pipe = std::make_unique<PipelineSink>(p->sink.get());
    f->peers.push_back(std::move(p));  // registered: unregistered by ~Forward
  }
  if (!f->peers.empty()) f->Watch(config_.stall_timeout);
  Log(LogLevel::kInfo, "etcd restore: preparing every member",
      {{"restore_id", header.restore_id}, {"members", absl::StrJoin(f->members, ",")},
       {"snapshot_id", meta.id}});
  return f;
}

absl::Status ClusterRestore::PrepareOwn(Forward* f, const StateOpener& open_state) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
  // This agent's own verified spool: linked, not copied again.
  if (auto* file = dynamic_cast<FileSource*>(src.get())) {
    absl::Status linked = f->own->LinkFrom(file->path());
    if (linked.ok()) return f->own->Finish(f->sha256);
    // (Another file system, say.)
    Log(LogLevel::kInfo, "etcd restore: copying the state for this member (it cannot be linked)",
        {{"restore_id", f->header.restore_id}, {"error", std::string(linked.message())}});
  }
  HashingSink hashing(f->own.get());
  SA_RETURN_IF_ERROR(CopyAll(src.get(), &hashing, kChunk).status());
  // The forward's SHA-256, when there is one, is of the verified bytes: the
  // copy must match it.
  std::string copied = HexLower(hashing.Finish());
  return f->own->Finish(f->sha256.empty() ? copied : f->sha256);
}

absl::StatusOr<std::unique_ptr<Participant>> ClusterRestore::Connect(const std::string& m) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Participant> peer,
                      config_.connect(m, config_.agents.at(m)));
  std::lock_guard<std::mutex> l(mu_);
  if (stopping_) return absl::CancelledError("the agent is stopping");
  active_.insert(peer.get());
  return peer;
}

void ClusterRestore::Unregister(Participant* p) {
  std::lock_guard<std::mutex> l(mu_);
  active_.erase(p);
}

absl::Status ClusterRestore::OnPeer(const std::string& m,
                                    const std::function<absl::Status(Participant*)>& call) {
  SA_ASSIGN_OR_RETURN(std::unique_ptr<Participant> peer, Connect(m));
  absl::Status s = call(peer.get());
  Unregister(peer.get());
  return s;
}

absl::Status ClusterRestore::StepOn(const std::string& m, RestoreStep step,
                                    const std::string& id, absl::Time deadline) {
  if (m == member()) return DoStep(step, id, deadline);
  return OnPeer(m, [&](Participant* peer) { return peer->Step(step, id, deadline); });
}

void ClusterRestore::AbortEverywhere(const std::string& id,
                                     const std::vector<std::string>& members) {
  auto failed = ForEach(members, [&](const std::string& m) {
    return StepOn(m, RestoreStep::kAbort, id, absl::Now() + absl::Seconds(10));
  });
  if (!failed.empty()) {
    Log(LogLevel::kWarning,
        "etcd restore: some agents could not be told to abort; they drop the "
        "restore themselves when they ask for the decision",
        {{"restore_id", id}, {"errors", Describe(failed)}});
  }
}

std::vector<std::pair<std::string, absl::Status>> ClusterRestore::StopMembers(
    const std::string& id, const std::vector<std::string>& members,
    const etcdserverpb::MemberListResponse& ml) {
  // The followers together, then the leader. etcd's leader, stopped, first
  // hands its leadership to the follower connected longest and waits until
  // that one leads — up to etcd's request timeout (7 s) when the follower is
  // stopping too, as it is when all stop at once. With its followers gone
  // there is no one to hand over to, and it stops at once. (Unknown leader:
  // all at once.)
  std::string leader;
  auto st = local_->Status(absl::Now() + absl::Seconds(5));
  for (const auto& m : ml.members()) {
    if (st.ok() && st->leader() == m.id()) leader = m.name();
  }
  auto stop = [&](const std::string& m) {
    return StepOn(m, RestoreStep::kStop, id, absl::Now() + absl::Seconds(60));
  };
  std::vector<std::string> first;
  for (const auto& m : members) {
    if (m != leader) first.push_back(m);
  }
  auto failed = ForEach(first, stop);
  if (failed.empty() && first.size() < members.size()) failed = ForEach({leader}, stop);
  return failed;
}

absl::Status ClusterRestore::CheckReady(absl::Time deadline) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!busy_.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "a restore (", busy_, ") is in progress on member ", member(),
          "; retry when it has finished"));
    }
  }
  return local_->Status(deadline).status();
}

absl::StatusOr<RestoreResult> ClusterRestore::Run(const SnapshotMeta& meta,
                                                  const StateOpener& open_state,
                                                  StateForward* forwarded, absl::Time deadline,
                                                  const BeforeCommit& before_commit) {
  std::unique_ptr<Forward> started;
  Forward* f = nullptr;
  if (forwarded != nullptr) {
    f = dynamic_cast<Forward*>(forwarded);
    if (f == nullptr) return absl::InternalError("a state forwarded by another engine");
  } else {
    SA_ASSIGN_OR_RETURN(started, StartForward(meta, deadline));
    f = started.get();
    if (!f->peers.empty()) {
      // Sent now, and hashed on the way (this member links the file).
      SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
      HashingSink hashing(f);
      SA_RETURN_IF_ERROR(CopyAll(src.get(), &hashing, kChunk).status());
      f->Verified(hashing.Finish());
    }
  }
  if (!f->peers.empty() && (f->sha256.empty() || f->written != meta.size)) {
    return absl::InternalError(absl::StrCat(
        "the state was forwarded unverified or incomplete (", f->written, " of ", meta.size,
        " bytes); nothing changed"));
  }
  const std::string id = f->header.restore_id;
  const std::vector<std::string>& members = f->members;
  const etcdserverpb::MemberListResponse& ml = f->ml;
  auto done_coordinating = [&] {
    std::lock_guard<std::mutex> l(mu_);
    coordinating_.clear();
  };

  auto failed = ForEach(members, [&](const std::string& m) {
    if (m == member()) return PrepareOwn(f, open_state);
    for (auto& p : f->peers) {
      if (p->member == m) return f->FinishPeer(*p);
    }
    return absl::InternalError(absl::StrCat("no prepare for member ", m));
  });
  if (!failed.empty()) {
    AbortEverywhere(id, members);
    done_coordinating();
    return absl::Status(failed[0].second.code(),
                        absl::StrCat("the restore was prepared nowhere: ",
                                     Describe(failed), "; nothing changed"));
  }
  if (before_commit) {
    absl::Status s = before_commit();
    if (!s.ok()) {
      AbortEverywhere(id, members);
      done_coordinating();
      return s;
    }
  }
  failed = StopMembers(id, members, ml);
  if (!failed.empty()) {
    AbortEverywhere(id, members);
    done_coordinating();
    return absl::Status(failed[0].second.code(),
                        absl::StrCat("not every member could be stopped: ",
                                     Describe(failed),
                                     "; nothing changed (the members run their "
                                     "old data again)"));
  }
  // The decision. From here on the restore happens.
  bool decided = false;
  absl::Status saved = records_.SaveDecision({id, members, meta.etcd.revision}, &decided);
  if (!saved.ok() && !decided) {
    AbortEverywhere(id, members);
    done_coordinating();
    return saved;
  }
  if (!saved.ok()) {
    // In place but perhaps not durable: it stands (a member may have read it
    // already), so nothing is aborted; members that do not hear a commit ask
    // for the decision and finish it.
    done_coordinating();
    return absl::Status(saved.code(), absl::StrCat(
        "the restore is decided, but its record could not be made durable (", saved.message(),
        "); nothing was aborted: the members finish the restore when they ask for the "
        "decision. Fix the disk of ", config_.state_dir, ", then check the cluster"));
  }
  done_coordinating();
  Log(LogLevel::kInfo, "etcd restore: decided to commit", {{"restore_id", id}});
  Failpoint("etcd-restore-decided");
  return FinishCommitted(id, members, &ml, &meta, deadline);
}

absl::StatusOr<RestoreResult> ClusterRestore::FinishCommitted(
    const std::string& id, const std::vector<std::string>& members,
    const etcdserverpb::MemberListResponse* member_list, const SnapshotMeta* meta,
    absl::Time deadline) {
  // Commit everywhere, retrying members that do not answer yet.
  std::vector<std::string> pending = members;
  while (!pending.empty()) {
    if (stopping_) {
      return absl::CancelledError(
          "the agent is stopping; the restore is decided and recorded: its next start finishes "
          "it");
    }
    auto failed = ForEach(pending, [&](const std::string& m) {
      return StepOn(m, RestoreStep::kCommit, id,
                    std::min(deadline, absl::Now() + absl::Seconds(120)));
    });
    pending.clear();
    for (const auto& f : failed) pending.push_back(f.first);
    if (pending.empty()) break;
    if (absl::Now() >= deadline) {
      return absl::AbortedError(absl::StrCat(
          "the restore is decided and committed on some members, but not yet "
          "confirmed by: ", Describe(failed),
          ". Their agents finish it when they are reachable (the decision is "
          "recorded); check the cluster before doing anything else"));
    }
    absl::SleepFor(absl::Seconds(1));
  }
  etcdserverpb::MemberListResponse ml;
  if (member_list != nullptr) {
    ml = *member_list;
  } else {
    SA_ASSIGN_OR_RETURN(ml, local_->MemberList(deadline));
  }
  SnapshotMeta none;
  SA_RETURN_IF_ERROR(WaitForRestoredCluster(ml, meta ? *meta : none, deadline));
  auto failed = ForEach(members, [&](const std::string& m) {
    return StepOn(m, RestoreStep::kFinalize, id, absl::Now() + absl::Seconds(60));
  });
  if (failed.empty()) {
    records_.RemoveDecision(id);
  } else {
    Log(LogLevel::kWarning, "etcd restore: not every member finalized",
        {{"restore_id", id}, {"errors", Describe(failed)}});
  }
  SA_ASSIGN_OR_RETURN(etcdserverpb::StatusResponse st, local_->Status(deadline));
  Log(LogLevel::kInfo, "etcd restore: the cluster serves the restored data",
      {{"restore_id", id}, {"revision", st.header().revision()}});
  return RestoreResult{st.raftindex()};
}

absl::Status ClusterRestore::WaitForRestoredCluster(
    const etcdserverpb::MemberListResponse& ml, const SnapshotMeta& meta,
    absl::Time deadline) {
  std::vector<std::unique_ptr<EtcdClient>> clients;
  for (const auto& m : ml.members()) {
    if (m.clienturls().empty()) continue;
    SA_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> c,
                        local_->ForEndpoint(m.clienturls(0)));
    clients.push_back(std::move(c));
  }
  std::string last = "no answer yet";
  while (absl::Now() < deadline) {
    if (stopping_) return absl::CancelledError("the agent is stopping");
    bool all = true;
    uint64_t cluster = 0;
    for (auto& c : clients) {
      auto st = c->Status(std::min(deadline, absl::Now() + absl::Seconds(2)));
      if (!st.ok()) {
        all = false;
        last = std::string(st.status().message());
        break;
      }
      if (st->leader() == 0 || st->header().revision() < meta.etcd.revision ||
          (cluster != 0 && st->header().cluster_id() != cluster)) {
        all = false;
        last = absl::StrCat("member at ", c->endpoint(), " has leader ",
                            EtcdId(st->leader()), ", revision ",
                            st->header().revision());
        break;
      }
      cluster = st->header().cluster_id();
    }
    if (all) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "the restored cluster did not become healthy before the deadline: ", last));
}

}  // namespace snapshot
