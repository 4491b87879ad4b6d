#include "raft/embedded_node.h"

#include <malloc.h>
#include <signal.h>
#include <string.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <thread>

extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/thread_name.h"
#include "raft/command.h"
#include "raft/config.h"
#include "raft/fsm_adapter.h"
#include "raft/kv_fsm.h"
#include "raft/loop.h"
#include "raft/restore_log.h"

namespace snapshot {
namespace {

uint64_t NowMillis() {
  return static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
}

}  // namespace

struct EmbeddedNode::Impl : public ReplicatedLog {
  EmbeddedNodeConfig cfg;
  std::map<uint64_t, Member> members_by_id;

  uv_loop_t loop;
  LoopMailbox mailbox;
  struct raft_uv_transport transport;
  struct raft_io io;
  struct raft_fsm fsm;
  struct raft raft;
  // The state machine as libraft sees it (raft/fsm_adapter.h).
  FsmAdapter fsm_adapter;
  kv::KvFsm& kvfsm = fsm_adapter.kv();

  std::thread thread;
  uv_work_t name_pool;  // see the loop thread's start

  template <typename T>
  absl::StatusOr<T> Call(std::function<void(std::shared_ptr<Waiter<T>>)> fn,
                         absl::Time deadline) {
    return mailbox.Call<T>(std::move(fn), deadline);
  }

  // --- loop-thread helpers -------------------------------------------------

  std::string LeaderDescription() {
    raft_id id = 0;
    const char* addr = nullptr;
    raft_leader(&raft, &id, &addr);
    if (id == 0) return "";
    std::string agent;
    auto it = members_by_id.find(id);
    if (it != members_by_id.end()) agent = it->second.agent_address;
    return absl::StrCat("node ", id,
                        agent.empty() ? "" : absl::StrCat(" (agent ", agent),
                        agent.empty() ? " (" : ", ",
                        "raft ", addr ? addr : "?", ")");
  }

  // The error for a request that only the leader can serve.
  absl::Status NotLeader() {
    std::string leader = LeaderDescription();
    if (leader.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "node ", cfg.id,
          " knows no leader right now: an election is in progress or the "
          "cluster has lost quorum; retry shortly"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("node ", cfg.id, " is not the leader; the leader is ",
                     leader, ": send the request there"));
  }

  absl::Status RaftError(int rv, absl::string_view what) {
    std::string msg = absl::StrCat(what, ": ", raft_strerror(rv));
    const char* detail = raft_errmsg(&raft);
    if (detail && *detail && strcmp(detail, raft_strerror(rv)) != 0) {
      absl::StrAppend(&msg, " (", detail, ")");
    }
    switch (rv) {
      case RAFT_NOTLEADER:
        return NotLeader();
      case RAFT_LEADERSHIPLOST:
        return absl::UnavailableError(absl::StrCat(
            what,
            ": leadership was lost before the entry was known to be "
            "committed (has the cluster lost quorum?); it may or may not have "
            "been applied"));
      case RAFT_SHUTDOWN:
      case RAFT_CANCELED:
        return absl::UnavailableError(
            absl::StrCat(what, ": the Raft node is shutting down"));
      case RAFT_NOSPACE:
        return absl::ResourceExhaustedError(msg);
      case RAFT_TOOBIG:
        return absl::InvalidArgumentError(msg);
      case RAFT_NOMEM:
        return absl::ResourceExhaustedError(msg);
      default:
        return absl::InternalError(msg);
    }
  }

  struct ApplyReq {
    struct raft_apply req;
    std::shared_ptr<Waiter<ApplyOutcome>> w;
    Impl* impl;
  };

  // Loop thread: proposes `buf` (ours until raft_apply takes it) and sets
  // `w` once applied (or failed).
  void ProposeOnLoop(struct raft_buffer buf, std::shared_ptr<Waiter<ApplyOutcome>> w) {
    if (raft_state(&raft) != RAFT_LEADER) {
      raft_free(buf.base);
      return w->Set(NotLeader());
    }
    auto* r = new ApplyReq;
    r->req.data = r;
    r->w = std::move(w);
    r->impl = this;
    int rv = raft_apply(&raft, &r->req, &buf, 1, [](struct raft_apply* req,
                                                    int status, void* result) {
      auto* r = static_cast<ApplyReq*>(req->data);
      if (status != 0) {
        r->w->Set(r->impl->RaftError(status, "applying the entry failed"));
      } else {
        ApplyOutcome o;
        o.index = req->index;
        o.result = static_cast<int>(reinterpret_cast<intptr_t>(result));
        r->w->Set(o);
      }
      delete r;
    });
    if (rv != 0) {
      raft_free(buf.base);  // ownership stays with us on failure
      r->w->Set(RaftError(rv, "proposing the entry failed"));
      delete r;
    }
  }

  // --- ReplicatedLog (the restore protocol's view of the node) ------------

  absl::Status CheckLeader(absl::Time deadline) override {
    return Call<bool>(
               [this](std::shared_ptr<Waiter<bool>> w) {
                 if (raft_state(&raft) != RAFT_LEADER) return w->Set(NotLeader());
                 w->Set(true);
               },
               deadline)
        .status();
  }

  absl::StatusOr<std::pair<bool, uint64_t>> RestoreCommitted(
      const std::string& id, absl::Time deadline) override {
    using Pair = std::pair<bool, uint64_t>;
    return Call<Pair>(
        [this, id](std::shared_ptr<Waiter<Pair>> w) {
          w->Set(Pair(kvfsm.RestoreCommitted(id),
                      static_cast<uint64_t>(raft_last_applied(&raft))));
        },
        deadline);
  }

  std::shared_ptr<Waiter<ApplyOutcome>> ProposeAsync(std::string entry) override {
    auto w = std::make_shared<Waiter<ApplyOutcome>>();
    // The copy into libraft's buffer is made here, on the caller's thread,
    // not on the loop.
    struct raft_buffer buf;
    buf.len = entry.size();
    buf.base = raft_malloc(buf.len);
    if (buf.base == nullptr) {
      w->Set(absl::ResourceExhaustedError("out of memory"));
      return w;
    }
    memcpy(buf.base, entry.data(), buf.len);
    if (!mailbox.Post([this, buf, w] { ProposeOnLoop(buf, w); })) {
      raft_free(buf.base);
      w->Set(absl::UnavailableError("the Raft node is shutting down"));
    }
    return w;
  }

  // Proposes a command and turns a non-applied result into an error.
  absl::StatusOr<uint64_t> ProposeCommand(const kv::Command& c,
                                          absl::Time deadline) {
    SA_ASSIGN_OR_RETURN(ApplyOutcome o, Propose(kv::EncodeCommand(c), deadline));
    if (o.result != kv::kApplied) {
      return absl::InternalError(absl::StrCat("the state machine refused the ",
                                              "entry: ",
                                              kv::ApplyResultName(o.result)));
    }
    return o.index;
  }

  struct BarrierReq {
    struct raft_barrier req;
    std::function<void(int status, uint64_t index)> done;
  };

  // Loop thread: runs `done` once every entry before a new barrier entry has
  // been applied (status 0), or with the failure.
  void BarrierOnLoop(std::function<void(int, uint64_t)> done) {
    auto* b = new BarrierReq;
    b->req.data = b;
    b->done = std::move(done);
    int rv = raft_barrier(&raft, &b->req, [](struct raft_barrier* req, int status) {
      auto* b = static_cast<BarrierReq*>(req->data);
      b->done(status, req->index);
      delete b;
    });
    if (rv != 0) {
      auto done_cb = std::move(b->done);
      delete b;
      done_cb(rv, 0);
    }
  }

  // Loop thread: for reads that must be linearizable, runs `read` after a
  // barrier on the leader; with allow_stale, runs it at once.
  template <typename T>
  void ReadOnLoop(bool allow_stale, std::shared_ptr<Waiter<T>> w,
                  std::function<absl::StatusOr<T>()> read) {
    if (allow_stale) return w->Set(read());
    if (raft_state(&raft) != RAFT_LEADER) return w->Set(NotLeader());
    BarrierOnLoop([this, w, read](int status, uint64_t) {
      if (status != 0) return w->Set(RaftError(status, "read barrier failed"));
      w->Set(read());
    });
  }

  SnapshotMeta MetaOnLoop(uint64_t index, uint64_t size) {
    SnapshotMeta m;
    m.version = 1;
    m.engine = kEngineEmbedded;
    m.index = index;
    m.term = raft.current_term;
    m.id = absl::StrCat(m.term, "-", index, "-", NowMillis());
    m.configuration_index = raft.configuration_index;
    m.size = size;
    for (unsigned i = 0; i < raft.configuration.n; ++i) {
      const raft_server& s = raft.configuration.servers[i];
      Server srv;
      srv.id = absl::StrCat(s.id);
      srv.address = s.address ? s.address : "";
      // hashicorp/raft suffrage: 0 voter, 1 nonvoter; libraft's standby and
      // spare do not vote.
      srv.suffrage = s.role == RAFT_VOTER ? 0 : 1;
      m.servers.push_back(std::move(srv));
    }
    return m;
  }
};

EmbeddedNode::EmbeddedNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EmbeddedNode::~EmbeddedNode() { Stop(); }

namespace {

// How far a start got, for the one teardown of a start that fails.
enum class StartStage { kLoop, kTransport, kIo, kRaft };

// Undoes a partial start from `reached` back to nothing; runs the loop so
// that the close callbacks complete before the loop is closed.
class StartRollback {
 public:
  // `close_raft` closes an initialised raft, and with it the I/O and the
  // transport.
  StartRollback(uv_loop_t* loop, raft_uv_transport* transport, raft_io* io,
                std::function<void()> close_raft)
      : loop_(loop), transport_(transport), io_(io), close_raft_(std::move(close_raft)) {}
  ~StartRollback() {
    if (done_) return;
    if (reached_ == StartStage::kRaft) {
      close_raft_();
    } else {
      if (reached_ == StartStage::kIo) raft_uv_close(io_);
      if (reached_ >= StartStage::kTransport) raft_uv_tcp_close(transport_);
    }
    uv_run(loop_, UV_RUN_DEFAULT);
    uv_loop_close(loop_);
  }
  void Reached(StartStage s) { reached_ = s; }
  // The node runs: nothing to undo.
  void Done() { done_ = true; }

 private:
  uv_loop_t* loop_;
  raft_uv_transport* transport_;
  raft_io* io_;
  std::function<void()> close_raft_;
  StartStage reached_ = StartStage::kLoop;
  bool done_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddedNode>> EmbeddedNode::Start(
    EmbeddedNodeConfig config) {
  SA_RETURN_IF_ERROR(PrepareToStart(&config));
  // A peer that goes away must not kill the process (RAFT_NOTES, defect 7).
  signal(SIGPIPE, SIG_IGN);

  auto impl = std::make_unique<Impl>();
  Impl* p = impl.get();
  p->cfg = config;
  for (const Member& m : config.peers) p->members_by_id[m.id] = m;

  if (uv_loop_init(&p->loop) != 0) {
    return absl::InternalError("uv_loop_init failed");
  }
  memset(&p->raft, 0, sizeof(p->raft));
  StartRollback rollback(&p->loop, &p->transport, &p->io, [p] {
    raft_close(&p->raft, [](struct raft* r) {
      auto* p = static_cast<Impl*>(r->data);
      raft_uv_close(&p->io);
      raft_uv_tcp_close(&p->transport);
    });
  });
  auto fail = [&](int rv, const std::string& what) -> absl::Status {
    std::string detail = raft_errmsg(&p->raft);
    return absl::InternalError(absl::StrCat(
        what, ": ", raft_strerror(rv), detail.empty() ? "" : " (",
        detail, detail.empty() ? "" : ")"));
  };
  int rv = raft_uv_tcp_init(&p->transport, &p->loop);
  if (rv != 0) {
    return absl::InternalError(absl::StrCat("cannot set up the Raft transport: ",
                                            raft_strerror(rv)));
  }
  rollback.Reached(StartStage::kTransport);
  if (!config.raft_bind_address.empty()) {
    rv = raft_uv_tcp_set_bind_address(&p->transport,
                                      config.raft_bind_address.c_str());
    if (rv != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot bind the Raft transport to ", config.raft_bind_address, ": ",
          raft_strerror(rv)));
    }
  }
  rv = raft_uv_init(&p->io, &p->loop, config.data_dir.c_str(), &p->transport);
  if (rv != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use data directory ", config.data_dir, ": ",
                     raft_strerror(rv)));
  }
  rollback.Reached(StartStage::kIo);
  // Refuse to start on a damaged log instead of silently dropping a segment
  // (RAFT_NOTES, defect 2).
  raft_uv_set_auto_recovery(&p->io, false);
  // Segments that hold several 4 MiB restore chunks (the default, 8 MiB,
  // holds one: a file created, preallocated and fsynced per chunk).
  raft_uv_set_segment_size(&p->io, config.segment_bytes);
  // Snapshots uncompressed: libraft compresses one into a single buffer
  // as large as the state (LZ4), a copy of the whole state in memory right
  // after every restore, and CPU the restore's critical path shares; the
  // disk holds the state's own size instead (docs/restore.md).
  raft_uv_set_snapshot_compression(&p->io, false);

  p->fsm_adapter.Attach(&p->fsm, &p->raft, &p->mailbox, config.id, config.snapshot_threshold,
                        config.snapshot_trailing);

  rv = raft_init(&p->raft, &p->io, &p->fsm, config.id,
                 config.raft_address.c_str());
  if (rv != 0) return fail(rv, "cannot initialise the Raft node");
  rollback.Reached(StartStage::kRaft);
  p->raft.data = p;
  raft_set_election_timeout(&p->raft, config.election_timeout_ms);
  raft_set_heartbeat_timeout(&p->raft, config.heartbeat_timeout_ms);
  raft_set_install_snapshot_timeout(&p->raft,
                                    config.install_snapshot_timeout_ms);
  raft_set_snapshot_threshold(&p->raft, config.snapshot_threshold);
  raft_set_snapshot_trailing(&p->raft, config.snapshot_trailing);
  raft_set_pre_vote(&p->raft, true);

  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (const Member& m : config.peers) {
    rv = raft_configuration_add(&conf, m.id, m.raft_address.c_str(),
                                m.voter ? RAFT_VOTER : RAFT_STANDBY);
    if (rv != 0) {
      raft_configuration_close(&conf);
      return fail(rv, "invalid cluster configuration");
    }
  }
  rv = raft_bootstrap(&p->raft, &conf);
  raft_configuration_close(&conf);
  if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {  // CANTBOOTSTRAP: has state
    return fail(rv, "cannot bootstrap the Raft node");
  }
  rv = raft_start(&p->raft);
  if (rv != 0) {
    return fail(rv, absl::StrCat("cannot start the Raft node from ", config.data_dir));
  }
  rollback.Done();
  p->mailbox.Attach(&p->loop);
  p->thread = std::thread([p] {
    // libuv's thread pool (libraft's disk work) starts with the loop's first
    // work and its threads take the name of the thread that starts it: named
    // apart from the loop (a no-op work, once per process; later ones queue).
    SetThreadName("sa-raft-io");
    uv_queue_work(&p->loop, &p->name_pool, [](uv_work_t*) {}, [](uv_work_t*, int) {});
    SetThreadName("sa-raft-loop");
    uv_run(&p->loop, UV_RUN_DEFAULT);
  });
  return std::unique_ptr<EmbeddedNode>(new EmbeddedNode(std::move(impl)));
}

void EmbeddedNode::Stop() {
  Impl* p = impl_.get();
  if (!p->thread.joinable()) return;
  p->mailbox.Close([p] {
    raft_close(&p->raft, [](struct raft* r) {
      auto* p = static_cast<Impl*>(r->data);
      raft_uv_close(&p->io);
      raft_uv_tcp_close(&p->transport);
      p->mailbox.CloseHandle();
    });
  });
  p->thread.join();
  uv_loop_close(&p->loop);
}

absl::StatusOr<bool> EmbeddedNode::HoldsNoState(absl::Time deadline) {
  ListOptions o;
  o.limit = 1;
  SA_ASSIGN_OR_RETURN(ListPage page, List(o, deadline));
  return page.entries.empty();
}

absl::StatusOr<NodeStatus> EmbeddedNode::Status(absl::Time deadline) {
  Impl* p = impl_.get();
  return p->Call<NodeStatus>(
      [p](std::shared_ptr<Waiter<NodeStatus>> w) {
        NodeStatus s;
        s.id = p->cfg.id;
        s.raft_address = p->cfg.raft_address;
        switch (raft_state(&p->raft)) {
          case RAFT_FOLLOWER:
            s.role = Role::kFollower;
            break;
          case RAFT_CANDIDATE:
            s.role = Role::kCandidate;
            break;
          case RAFT_LEADER:
            s.role = Role::kLeader;
            break;
          default:
            s.role = Role::kUnavailable;
        }
        raft_id leader = 0;
        const char* addr = nullptr;
        raft_leader(&p->raft, &leader, &addr);
        s.leader_id = leader;
        s.leader_raft_address = addr ? addr : "";
        auto it = p->members_by_id.find(leader);
        if (it != p->members_by_id.end()) {
          s.leader_agent_address = it->second.agent_address;
        }
        s.term = p->raft.current_term;
        s.commit_index = p->raft.commit_index;
        s.applied_index = raft_last_applied(&p->raft);
        s.last_index = raft_last_index(&p->raft);
        for (unsigned i = 0; i < p->raft.configuration.n; ++i) {
          const raft_server& srv = p->raft.configuration.servers[i];
          Member m;
          m.id = srv.id;
          m.raft_address = srv.address ? srv.address : "";
          auto mi = p->members_by_id.find(srv.id);
          if (mi != p->members_by_id.end()) {
            m.agent_address = mi->second.agent_address;
          }
          m.voter = srv.role == RAFT_VOTER;
          s.members.push_back(std::move(m));
        }
        w->Set(std::move(s));
      },
      deadline);
}

absl::Status EmbeddedNode::CheckLeader(absl::Time deadline) {
  return impl_->CheckLeader(deadline);
}

absl::Status EmbeddedNode::WaitForLeader(absl::Time deadline) {
  while (absl::Now() < deadline) {
    auto s = Status(deadline);
    if (s.ok() && s->leader_id != 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "node ", impl_->cfg.id, " found no leader before the deadline"));
}

absl::StatusOr<CapturedSnapshot> EmbeddedNode::Snapshot(
    const SnapshotOptions& options, absl::Time deadline) {
  Impl* p = impl_.get();
  // The loop captures an immutable view (O(shards)); the bytes are produced
  // later, off the loop, by whoever reads the source.
  struct Captured {
    SnapshotMeta meta;
    bool stale;
    kv::StateView view;
  };
  auto captured = p->Call<Captured>(
      [p, options](std::shared_ptr<Waiter<Captured>> w) {
        auto capture = [p, w](uint64_t index, bool stale) {
          kv::StateView view = p->kvfsm.state().View();
          Captured c{p->MetaOnLoop(index, view.SerializedSize()), stale,
                     std::move(view)};
          w->Set(std::move(c));
        };
        if (raft_state(&p->raft) != RAFT_LEADER) {
          if (!options.allow_stale) return w->Set(p->NotLeader());
          return capture(raft_last_applied(&p->raft), true);
        }
        // The barrier's callback runs once every earlier entry is applied:
        // the state then holds exactly the writes with index < the barrier's
        // index (the barrier itself changes nothing).
        p->BarrierOnLoop([p, w, capture](int status, uint64_t index) {
          if (status != 0) {
            return w->Set(p->RaftError(status, "snapshot barrier failed"));
          }
          capture(index, false);
        });
      },
      deadline);
  if (!captured.ok()) return captured.status();
  CapturedSnapshot out;
  out.meta = std::move(captured->meta);
  out.stale = captured->stale;
  out.state = captured->view.NewSource();
  return out;
}

absl::StatusOr<RestoreResult> EmbeddedNode::Restore(const SnapshotMeta& meta,
                                                    const StateOpener& open_state,
                                                    absl::Time deadline,
                                                    const BeforeCommit& before_commit) {
  return RestoreThroughLog(impl_.get(), meta, open_state, deadline, before_commit);
}

absl::StatusOr<uint64_t> EmbeddedNode::Put(const std::string& key,
                                           const std::string& value,
                                           absl::Time deadline) {
  SA_RETURN_IF_ERROR(kv::ValidateEntry(key, value));
  kv::Command c;
  c.type = kv::Command::kPut;
  c.key = key;
  c.value = value;
  return impl_->ProposeCommand(c, deadline);
}

absl::StatusOr<uint64_t> EmbeddedNode::Delete(const std::string& key,
                                              absl::Time deadline) {
  SA_RETURN_IF_ERROR(kv::ValidateEntry(key, ""));
  kv::Command c;
  c.type = kv::Command::kDelete;
  c.key = key;
  return impl_->ProposeCommand(c, deadline);
}

absl::StatusOr<std::optional<std::string>> EmbeddedNode::Get(
    const std::string& key, bool allow_stale, absl::Time deadline) {
  Impl* p = impl_.get();
  using T = std::optional<std::string>;
  return p->Call<T>(
      [p, key, allow_stale](std::shared_ptr<Waiter<T>> w) {
        p->ReadOnLoop<T>(allow_stale, w, [p, key]() -> absl::StatusOr<T> {
          return p->kvfsm.state().Get(key);
        });
      },
      deadline);
}

absl::StatusOr<ListPage> EmbeddedNode::List(const ListOptions& options,
                                            absl::Time deadline) {
  Impl* p = impl_.get();
  const bool allow_stale = options.allow_stale;
  // Capture a view on the loop; scan it here.
  auto view = p->Call<kv::StateView>(
      [p, allow_stale](std::shared_ptr<Waiter<kv::StateView>> w) {
        p->ReadOnLoop<kv::StateView>(
            allow_stale, w, [p]() -> absl::StatusOr<kv::StateView> {
              return p->kvfsm.state().View();
            });
      },
      deadline);
  if (!view.ok()) return view.status();
  return view->List(options.prefix, options.start_after, options.limit,
                    options.max_bytes);
}

absl::StatusOr<std::pair<uint64_t, Digest>> EmbeddedNode::StateDigest(
    absl::Time deadline) {
  Impl* p = impl_.get();
  using Pair = std::pair<uint64_t, kv::StateView>;
  auto captured = p->Call<Pair>(
      [p](std::shared_ptr<Waiter<Pair>> w) {
        w->Set(Pair(raft_last_applied(&p->raft), p->kvfsm.state().View()));
      },
      deadline);
  if (!captured.ok()) return captured.status();
  std::unique_ptr<ByteSource> src = captured->second.NewSource();
  SA_ASSIGN_OR_RETURN(Digest digest, Sha256OfSource(src.get()));
  return std::make_pair(captured->first, digest);
}

}  // namespace snapshot
