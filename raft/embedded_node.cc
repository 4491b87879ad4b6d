#include "raft/embedded_node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "raft/command.h"
#include "raft/kv_fsm.h"

namespace snapshot {

namespace {

// A one-shot result that a loop-thread callback fills and a caller waits for.
template <typename T>
class Waiter {
 public:
  void Set(absl::StatusOr<T> v) {
    std::lock_guard<std::mutex> l(mu_);
    if (value_) return;
    value_ = std::move(v);
    cv_.notify_all();
  }
  absl::StatusOr<T> Wait(absl::Time deadline) {
    std::unique_lock<std::mutex> l(mu_);
    auto d = absl::ToChronoTime(deadline);
    if (!cv_.wait_until(l, d, [&] { return value_.has_value(); })) {
      return absl::DeadlineExceededError(
          "the deadline passed before the Raft node answered");
    }
    return *value_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<absl::StatusOr<T>> value_;
};

bool ParseHostPort(absl::string_view s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  int p;
  if (!absl::SimpleAtoi(s.substr(colon + 1), &p) || p <= 0 || p > 65535) {
    return false;
  }
  *host = std::string(s.substr(0, colon));
  *port = p;
  return true;
}

// libraft reports a port in use with an empty message (RAFT_NOTES, defect
// 6): try the bind ourselves first and say what is wrong.
absl::Status CheckAddressFree(const std::string& address) {
  std::string host;
  int port;
  if (!ParseHostPort(address, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Raft address \"", address, "\" is not HOST:PORT with a numeric port"));
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Raft address \"", address,
        "\" must use a numeric IPv4 host (libraft's TCP transport does not "
        "resolve names)"));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa));
  int err = errno;
  close(fd);
  if (rc != 0) {
    if (err == EADDRINUSE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Raft address ", address,
          " is already in use (is another agent running with it?)"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on Raft address ", address, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status PrepareDataDir(const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("a data directory is required");
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || mkdir(dir.c_str(), 0700) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create data directory ", dir, ": ", strerror(errno),
          " (does its parent directory exist and is it writable?)"));
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data directory ", dir, " exists but is not a directory"));
  }
  std::string probe = dir + "/.write-probe";
  int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory ", dir, " is not writable: ", strerror(errno)));
  }
  close(fd);
  unlink(probe.c_str());
  return absl::OkStatus();
}

std::string RandomId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

uint64_t NowMillis() {
  return static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
}

}  // namespace

absl::StatusOr<std::vector<Member>> ParsePeers(absl::string_view spec) {
  std::vector<Member> out;
  std::set<uint64_t> ids;
  std::set<std::string> addrs;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    auto bad = [&](const char* why) {
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed peer \"", item, "\": ", why,
          " (expected ID=RAFT_HOST:PORT[@AGENT_HOST:PORT], e.g. "
          "1=127.0.0.1:7001@127.0.0.1:8001)"));
    };
    size_t eq = item.find('=');
    if (eq == absl::string_view::npos) return bad("no '='");
    Member m;
    if (!absl::SimpleAtoi(item.substr(0, eq), &m.id) || m.id == 0) {
      return bad("the id must be a positive integer");
    }
    absl::string_view rest = item.substr(eq + 1);
    size_t at = rest.find('@');
    m.raft_address = std::string(rest.substr(0, at));
    if (at != absl::string_view::npos) {
      m.agent_address = std::string(rest.substr(at + 1));
    }
    std::string host;
    int port;
    if (!ParseHostPort(m.raft_address, &host, &port)) {
      return bad("the Raft address is not HOST:PORT");
    }
    if (!m.agent_address.empty() &&
        !ParseHostPort(m.agent_address, &host, &port)) {
      return bad("the agent address is not HOST:PORT");
    }
    if (!ids.insert(m.id).second) return bad("the id is listed twice");
    if (!addrs.insert(m.raft_address).second) {
      return bad("the Raft address is listed twice");
    }
    out.push_back(std::move(m));
  }
  if (out.empty()) return absl::InvalidArgumentError("the peer list is empty");
  return out;
}

// ---------------------------------------------------------------------------

struct EmbeddedNode::Impl {
  EmbeddedNodeConfig cfg;
  std::map<uint64_t, Member> members_by_id;

  uv_loop_t loop;
  uv_async_t wake;
  struct raft_uv_transport transport;
  struct raft_io io;
  struct raft_fsm fsm;
  struct raft raft;
  kv::KvFsm kvfsm;

  std::thread thread;
  std::mutex mu;
  std::vector<std::function<void()>> queue;  // guarded by mu
  bool accepting = true;                     // guarded by mu

  // Runs `fn` on the loop thread. False when the node is stopping.
  bool Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (!accepting) return false;
      queue.push_back(std::move(fn));
    }
    uv_async_send(&wake);
    return true;
  }

  // Posts `fn`, which must eventually Set() the waiter, and waits for it.
  template <typename T>
  absl::StatusOr<T> Call(std::function<void(std::shared_ptr<Waiter<T>>)> fn,
                         absl::Time deadline) {
    auto w = std::make_shared<Waiter<T>>();
    if (!Post([w, fn = std::move(fn)] { fn(w); })) {
      return absl::UnavailableError("the Raft node is shutting down");
    }
    return w->Wait(deadline);
  }

  // --- loop-thread helpers -------------------------------------------------

  static void OnWake(uv_async_t* h) {
    auto* self = static_cast<Impl*>(h->data);
    std::vector<std::function<void()>> work;
    {
      std::lock_guard<std::mutex> l(self->mu);
      work.swap(self->queue);
    }
    for (auto& fn : work) fn();
  }

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

  struct ApplyOutcome {
    uint64_t index = 0;
    int result = kv::kApplied;
  };

  struct ApplyReq {
    struct raft_apply req;
    std::shared_ptr<Waiter<ApplyOutcome>> w;
    Impl* impl;
  };

  // Loop thread: proposes `entry` and sets `w` once applied (or failed).
  void ProposeOnLoop(const std::string& entry,
                     std::shared_ptr<Waiter<ApplyOutcome>> w) {
    if (raft_state(&raft) != RAFT_LEADER) return w->Set(NotLeader());
    struct raft_buffer buf;
    buf.len = entry.size();
    buf.base = raft_malloc(buf.len);
    if (buf.base == nullptr) {
      return w->Set(absl::ResourceExhaustedError("out of memory"));
    }
    memcpy(buf.base, entry.data(), buf.len);
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

  absl::StatusOr<ApplyOutcome> Propose(std::string entry, absl::Time deadline) {
    auto shared = std::make_shared<std::string>(std::move(entry));
    return Call<ApplyOutcome>(
        [this, shared](std::shared_ptr<Waiter<ApplyOutcome>> w) {
          ProposeOnLoop(*shared, std::move(w));
        },
        deadline);
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

  // --- FSM callbacks (loop thread, except snapshot_async) ------------------

  static int FsmApply(struct raft_fsm* fsm, const struct raft_buffer* buf,
                      void** result) {
    auto* self = static_cast<Impl*>(fsm->data);
    int r = self->kvfsm.Apply(
        absl::string_view(static_cast<const char*>(buf->base), buf->len));
    // Never fail here: a non-zero return stops libraft's apply loop
    // (RAFT_NOTES, defect 4). The outcome travels in the result pointer.
    *result = reinterpret_cast<void*>(static_cast<intptr_t>(r));
    return 0;
  }

  // The engine's own snapshot (log compaction). libraft 0.15.0's libuv I/O
  // has no async_work, so FSM version 3 (serialize off the loop) is refused:
  // this runs on the loop thread and stalls it for as long as serializing
  // the state takes. snapshot_threshold keeps it rare. (User snapshots via
  // Snapshot() do not go through here and never serialize on the loop.)
  static int FsmSnapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[],
                         unsigned* n_bufs) {
    auto* self = static_cast<Impl*>(fsm->data);
    std::string data = self->kvfsm.Capture().Serialize();
    auto* out = static_cast<struct raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    if (out == nullptr) return RAFT_NOMEM;
    out->len = data.size();
    out->base = raft_malloc(data.size());
    if (out->base == nullptr) {
      raft_free(out);
      return RAFT_NOMEM;
    }
    memcpy(out->base, data.data(), data.size());
    *bufs = out;
    *n_bufs = 1;
    return 0;
  }

  // With finalize set (FSM version 2) the buffers stay ours: free them.
  static int FsmSnapshotFinalize(struct raft_fsm*, struct raft_buffer* bufs[],
                                 unsigned* n_bufs) {
    if (*bufs != nullptr) {
      for (unsigned i = 0; i < *n_bufs; ++i) raft_free((*bufs)[i].base);
      raft_free(*bufs);
    }
    *bufs = nullptr;
    *n_bufs = 0;
    return 0;
  }

  static int FsmRestore(struct raft_fsm* fsm, struct raft_buffer* buf) {
    auto* self = static_cast<Impl*>(fsm->data);
    absl::Status s = self->kvfsm.Load(
        absl::string_view(static_cast<const char*>(buf->base), buf->len));
    raft_free(buf->base);  // restore owns the buffer (RAFT_NOTES, defect 4)
    if (!s.ok()) {
      fprintf(stderr, "snapshot-agent: raft node %llu: %s\n",
              static_cast<unsigned long long>(self->cfg.id),
              std::string(s.message()).c_str());
      return RAFT_CORRUPT;
    }
    return 0;
  }
};

EmbeddedNode::EmbeddedNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EmbeddedNode::~EmbeddedNode() { Stop(); }

absl::StatusOr<std::unique_ptr<EmbeddedNode>> EmbeddedNode::Start(
    EmbeddedNodeConfig config) {
  if (config.id == 0) {
    return absl::InvalidArgumentError("the node id must be a positive integer");
  }
  if (config.peers.empty()) {
    Member self;
    self.id = config.id;
    self.raft_address = config.raft_address;
    self.agent_address = config.agent_address;
    config.peers.push_back(self);
  }
  bool found = false;
  for (const Member& m : config.peers) {
    if (m.id == config.id) {
      found = true;
      if (m.raft_address != config.raft_address) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the peer list gives node ", config.id, " the Raft address ",
            m.raft_address, " but this node is configured with ",
            config.raft_address));
      }
    }
  }
  if (!found) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the peer list does not contain this node (id ", config.id, ")"));
  }
  SA_RETURN_IF_ERROR(PrepareDataDir(config.data_dir));
  const std::string& bind = config.raft_bind_address.empty()
                                ? config.raft_address
                                : config.raft_bind_address;
  if (!config.raft_bind_address.empty()) {
    std::string h1, h2;
    int p1 = 0, p2 = 0;
    if (!ParseHostPort(config.raft_address, &h1, &p1) ||
        !ParseHostPort(bind, &h2, &p2) || p1 != p2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the Raft bind address ", bind, " must be IPV4:PORT with the port of "
          "the Raft address ", config.raft_address));
    }
  }
  SA_RETURN_IF_ERROR(CheckAddressFree(bind));
  // A peer that goes away must not kill the process (RAFT_NOTES, defect 7).
  signal(SIGPIPE, SIG_IGN);

  auto impl = std::make_unique<Impl>();
  Impl* p = impl.get();
  p->cfg = config;
  for (const Member& m : config.peers) p->members_by_id[m.id] = m;

  if (uv_loop_init(&p->loop) != 0) {
    return absl::InternalError("uv_loop_init failed");
  }
  auto fail = [&](int rv, const std::string& what) -> absl::Status {
    std::string detail = raft_errmsg(&p->raft);
    return absl::InternalError(absl::StrCat(
        what, ": ", raft_strerror(rv), detail.empty() ? "" : " (",
        detail, detail.empty() ? "" : ")"));
  };
  memset(&p->raft, 0, sizeof(p->raft));
  int rv = raft_uv_tcp_init(&p->transport, &p->loop);
  if (rv != 0) {
    uv_loop_close(&p->loop);
    return absl::InternalError(absl::StrCat("cannot set up the Raft transport: ",
                                            raft_strerror(rv)));
  }
  if (!config.raft_bind_address.empty()) {
    rv = raft_uv_tcp_set_bind_address(&p->transport,
                                      config.raft_bind_address.c_str());
    if (rv != 0) {
      raft_uv_tcp_close(&p->transport);
      uv_loop_close(&p->loop);
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot bind the Raft transport to ", config.raft_bind_address, ": ",
          raft_strerror(rv)));
    }
  }
  rv = raft_uv_init(&p->io, &p->loop, config.data_dir.c_str(), &p->transport);
  if (rv != 0) {
    raft_uv_tcp_close(&p->transport);
    uv_loop_close(&p->loop);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use data directory ", config.data_dir, ": ",
                     raft_strerror(rv)));
  }
  // Refuse to start on a damaged log instead of silently dropping a segment
  // (RAFT_NOTES, defect 2).
  raft_uv_set_auto_recovery(&p->io, false);

  memset(&p->fsm, 0, sizeof(p->fsm));
  p->fsm.version = 2;
  p->fsm.data = p;
  p->fsm.apply = &Impl::FsmApply;
  p->fsm.snapshot = &Impl::FsmSnapshot;
  p->fsm.snapshot_finalize = &Impl::FsmSnapshotFinalize;
  p->fsm.restore = &Impl::FsmRestore;

  rv = raft_init(&p->raft, &p->io, &p->fsm, config.id,
                 config.raft_address.c_str());
  if (rv != 0) {
    absl::Status s = fail(rv, "cannot initialise the Raft node");
    raft_uv_close(&p->io);
    raft_uv_tcp_close(&p->transport);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    return s;
  }
  raft_set_election_timeout(&p->raft, config.election_timeout_ms);
  raft_set_heartbeat_timeout(&p->raft, config.heartbeat_timeout_ms);
  raft_set_install_snapshot_timeout(&p->raft,
                                    config.install_snapshot_timeout_ms);
  raft_set_snapshot_threshold(&p->raft, config.snapshot_threshold);
  raft_set_snapshot_trailing(&p->raft, config.snapshot_trailing);
  raft_set_pre_vote(&p->raft, true);

  auto close_and_fail = [&](absl::Status s) -> absl::Status {
    raft_close(&p->raft, [](struct raft* r) {
      auto* p = static_cast<Impl*>(r->data);
      raft_uv_close(&p->io);
      raft_uv_tcp_close(&p->transport);
    });
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    return s;
  };
  p->raft.data = p;

  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (const Member& m : config.peers) {
    rv = raft_configuration_add(&conf, m.id, m.raft_address.c_str(),
                                m.voter ? RAFT_VOTER : RAFT_STANDBY);
    if (rv != 0) {
      raft_configuration_close(&conf);
      return close_and_fail(fail(rv, "invalid cluster configuration"));
    }
  }
  rv = raft_bootstrap(&p->raft, &conf);
  raft_configuration_close(&conf);
  if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {  // CANTBOOTSTRAP: has state
    return close_and_fail(fail(rv, "cannot bootstrap the Raft node"));
  }
  rv = raft_start(&p->raft);
  if (rv != 0) {
    return close_and_fail(fail(
        rv, absl::StrCat("cannot start the Raft node from ", config.data_dir)));
  }
  p->wake.data = p;
  uv_async_init(&p->loop, &p->wake, &Impl::OnWake);
  p->thread = std::thread([p] { uv_run(&p->loop, UV_RUN_DEFAULT); });
  return std::unique_ptr<EmbeddedNode>(new EmbeddedNode(std::move(impl)));
}

void EmbeddedNode::Stop() {
  Impl* p = impl_.get();
  if (!p->thread.joinable()) return;
  {
    std::lock_guard<std::mutex> l(p->mu);
    p->accepting = false;
    p->queue.push_back([p] {
      raft_close(&p->raft, [](struct raft* r) {
        auto* p = static_cast<Impl*>(r->data);
        raft_uv_close(&p->io);
        raft_uv_tcp_close(&p->transport);
        uv_close(reinterpret_cast<uv_handle_t*>(&p->wake), nullptr);
      });
    });
  }
  uv_async_send(&p->wake);
  p->thread.join();
  uv_loop_close(&p->loop);
}

absl::StatusOr<NodeStatus> EmbeddedNode::Status() {
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
      absl::Now() + absl::Seconds(10));
}

absl::Status EmbeddedNode::CheckLeader(absl::Time deadline) {
  Impl* p = impl_.get();
  return p
      ->Call<bool>(
          [p](std::shared_ptr<Waiter<bool>> w) {
            if (raft_state(&p->raft) != RAFT_LEADER) return w->Set(p->NotLeader());
            w->Set(true);
          },
          deadline)
      .status();
}

absl::Status EmbeddedNode::WaitForLeader(absl::Time deadline) {
  while (absl::Now() < deadline) {
    auto s = Status();
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

absl::StatusOr<RestoreResult> EmbeddedNode::Restore(
    const SnapshotMeta& meta, const StateOpener& open_state,
    absl::Time deadline) {
  Impl* p = impl_.get();
  // Fail fast on a follower, before reading anything.
  SA_RETURN_IF_ERROR(CheckLeader(deadline));

  // 1. The bytes must be this engine's state, of the announced length.
  Digest digest;
  {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
    kv::StateDecoder decoder;
    Sha256 h;
    uint64_t total = 0;
    std::string buf(1 << 20, '\0');
    for (;;) {
      SA_ASSIGN_OR_RETURN(size_t n, src->Read(&buf[0], buf.size()));
      if (n == 0) break;
      absl::string_view chunk(buf.data(), n);
      total += n;
      h.Update(chunk);
      SA_RETURN_IF_ERROR(decoder.Feed(chunk));
    }
    SA_RETURN_IF_ERROR(decoder.Finish().status());
    if (total != meta.size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the state has %d bytes but the metadata announces %d", total,
          meta.size));
    }
    digest = h.Finish();
  }

  // 2. Replicate through the log: begin, chunks, commit.
  const std::string id = RandomId();
  kv::Command begin;
  begin.type = kv::Command::kRestoreBegin;
  begin.restore_id = id;
  begin.size = meta.size;
  begin.sha256 = digest;
  SA_RETURN_IF_ERROR(p->ProposeCommand(begin, deadline).status());
  {
    SA_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, open_state());
    std::string buf(kv::kRestoreChunkBytes, '\0');
    uint64_t offset = 0;
    for (;;) {
      // Fill a whole chunk (sources may return short reads).
      size_t filled = 0;
      while (filled < buf.size()) {
        SA_ASSIGN_OR_RETURN(size_t n, src->Read(&buf[filled], buf.size() - filled));
        if (n == 0) break;
        filled += n;
      }
      if (filled == 0) break;
      kv::Command chunk;
      chunk.type = kv::Command::kRestoreChunk;
      chunk.restore_id = id;
      chunk.offset = offset;
      chunk.value.assign(buf.data(), filled);
      SA_RETURN_IF_ERROR(p->ProposeCommand(chunk, deadline).status());
      offset += filled;
      if (filled < buf.size()) break;
    }
  }
  kv::Command commit;
  commit.type = kv::Command::kRestoreCommit;
  commit.restore_id = id;
  absl::StatusOr<Impl::ApplyOutcome> outcome =
      p->Propose(kv::EncodeCommand(commit), deadline);
  if (outcome.ok()) {
    switch (outcome->result) {
      case kv::kApplied:
        return RestoreResult{outcome->index};
      case kv::kRestoreInvalidState:
        return absl::FailedPreconditionError(
            "the state was refused at commit: it is not a valid key-value "
            "state; nothing changed");
      default:
        return absl::AbortedError(
            absl::StrCat("the restore was not applied: ",
                         kv::ApplyResultName(outcome->result),
                         "; nothing changed"));
    }
  }
  // "Leadership lost" does not mean "not applied": the commit may still be
  // applied by the next leader. Watch this node's own state machine.
  absl::Time confirm_until =
      std::min(deadline, absl::Now() + absl::Seconds(10));
  while (absl::Now() < confirm_until) {
    auto done = p->Call<std::pair<bool, uint64_t>>(
        [p, id](std::shared_ptr<Waiter<std::pair<bool, uint64_t>>> w) {
          w->Set(std::make_pair(p->kvfsm.RestoreCommitted(id),
                                static_cast<uint64_t>(
                                    raft_last_applied(&p->raft))));
        },
        confirm_until);
    if (done.ok() && done->first) return RestoreResult{done->second};
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::AbortedError(absl::StrCat(
      "the restore's commit could not be confirmed (", outcome.status().message(),
      "); it may or may not have taken effect: check the data before retrying"));
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
