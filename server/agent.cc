#include "server/agent.h"

#include "server/metrics.h"
#include "server/rpc.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "prometheus/exposer.h"

namespace snapshot {
namespace {

absl::Status SplitHostPort(const std::string& address, std::string* host) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", address, "\" is not HOST:PORT"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

bool IsLoopbackSockaddr(const struct sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const struct sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      return in6->sin6_addr.s6_addr[12] == 127;
    }
  }
  return false;
}

// Channel arguments of every server of the agent: no SO_REUSEPORT, so that a
// second agent on the same address fails to start instead of receiving half
// of the calls.
void NoPortSharing(grpc::ServerBuilder* b) {
  b->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

}  // namespace

absl::StatusOr<bool> IsLoopbackAddress(const std::string& address) {
  std::string host;
  SA_RETURN_IF_ERROR(SplitHostPort(address, &host));
  if (host.empty()) return false;  // every interface
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return false;
  bool all_loopback = res != nullptr;
  for (struct addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    all_loopback = all_loopback && IsLoopbackSockaddr(ai->ai_addr);
  }
  freeaddrinfo(res);
  return all_loopback;
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentConfig config) {
  const bool tls = !config.tls_cert.empty() || !config.tls_key.empty();
  const bool tokens = !config.token_file.empty();
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  if (!tls && !config.tls_client_ca.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key");
  }
  absl::StatusOr<bool> local = IsLoopbackAddress(config.listen);
  if (!local.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: ", local.status().message()));
  }
  if (!*local && !(tls && tokens) && !config.insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to listen on ", config.listen,
        " (not an address that resolves to loopback only) without both TLS "
        "(--tls-cert, --tls-key) and tokens (--token-file); pass --insecure "
        "to do it anyway"));
  }
  if (config.data_dir.empty()) config.data_dir = config.node.data_dir;

  std::unique_ptr<Agent> agent(new Agent());
  if (tls) {
    SA_ASSIGN_OR_RETURN(agent->tls_,
                        ReloadableTls::Load({config.tls_cert, config.tls_key,
                                             config.tls_client_ca}));
  }
  if (tokens) {
    SA_ASSIGN_OR_RETURN(agent->auth_, Authorizer::FromFile(config.token_file));
  }
  SA_ASSIGN_OR_RETURN(agent->lock_, DirLock::Acquire(config.data_dir));
  SA_ASSIGN_OR_RETURN(SpoolCleanup cleaned, RemoveStaleSpools(config.data_dir));
  if (cleaned.files > 0) {
    Log(LogLevel::kWarning, "removed stale restore spool files",
        {{"dir", config.data_dir},
         {"files", cleaned.files},
         {"bytes_freed", cleaned.bytes}});
  }

  SA_RETURN_IF_ERROR(agent->StartEngine(&config));
  agent->restorer_ = std::make_unique<Restorer>(
      agent->node_.get(), config.data_dir, config.service.limits);
  if (config.job.snapshot_dir.empty()) config.job.snapshot_dir = config.data_dir + "/snapshots";
  config.job.take.compress_threads = CompressThreads(config.service.compress_threads);
  config.job.take.limits = config.service.limits;
  config.job.metrics = &Metrics::Get();
  {
    absl::StatusOr<std::unique_ptr<SnapshotJob>> job = SnapshotJob::Start(
        agent->node_.get(), config.job,
        [a = agent.get()](bool healthy) { a->SetScheduleHealth(healthy); });
    if (!job.ok()) {
      agent->StopEngine();
      return absl::Status(job.status().code(),
                          absl::StrCat("snapshot catalog ", config.job.snapshot_dir, ": ",
                                       job.status().message()));
    }
    agent->job_ = std::move(*job);
  }
  config.service.auth = agent->auth_.get();
  agent->snapshots_ = std::make_unique<SnapshotServiceImpl>(
      agent->node_.get(), agent->restorer_.get(), config.service, agent->job_.get());
  if (agent->embedded_ != nullptr) {
    agent->kv_ = std::make_unique<KeyValueServiceImpl>(agent->embedded_,
                                                       config.service);
  }
  if (agent->etcd_restore_ != nullptr) {
    agent->etcd_service_ = std::make_unique<EtcdRestoreServiceImpl>(
        agent->etcd_restore_.get(), agent->auth_.get(), agent->snapshots_->stream_limits());
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  NoPortSharing(&builder);
  int port = 0;
  builder.AddListeningPort(config.listen,
                           tls ? agent->tls_->Credentials()
                               : grpc::InsecureServerCredentials(),
                           &port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  {
    // The RPC frame: every call's method, for its Rpc (server/rpc.h).
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> frame;
    frame.push_back(MakeRpcFrameFactory());
    builder.experimental().SetInterceptorCreators(std::move(frame));
  }
  builder.RegisterService(agent->snapshots_.get());
  if (agent->kv_) builder.RegisterService(agent->kv_.get());
  if (agent->etcd_service_) builder.RegisterService(agent->etcd_service_.get());
  agent->server_ = builder.BuildAndStart();
  if (!agent->server_ || port == 0) {
    agent->job_.reset();
    agent->StopEngine();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on ", config.listen,
        " (address in use: is another agent running with it? Or not an "
        "address of this machine)"));
  }
  agent->address_ =
      absl::StrCat(config.listen.substr(0, config.listen.rfind(':')), ":", port);
  agent->server_->GetHealthCheckService()->SetServingStatus(false);
  if (!config.health_listen.empty()) {
    grpc::ServerBuilder health_builder;
    NoPortSharing(&health_builder);
    int health_port = 0;
    health_builder.AddListeningPort(config.health_listen,
                                    grpc::InsecureServerCredentials(), &health_port);
    agent->health_server_ = health_builder.BuildAndStart();
    if (!agent->health_server_ || health_port == 0) {
      agent->server_->Shutdown();
      agent->job_.reset();
      agent->StopEngine();
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot listen on --health-listen ", config.health_listen,
          " (address in use, or not an address of this machine)"));
    }
    agent->health_server_->GetHealthCheckService()->SetServingStatus(false);
  }
  bool schedule_healthy;
  {
    std::lock_guard<std::mutex> l(agent->mu_);
    schedule_healthy = agent->schedule_healthy_;
  }
  agent->SetScheduleHealth(schedule_healthy);  // now that the servers exist
  if (!config.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<prometheus::Exposer>> m =
        StartMetricsServer(config.metrics_listen);
    if (!m.ok()) {
      agent->Shutdown(absl::ZeroDuration());
      return m.status();
    }
    agent->metrics_ = std::move(*m);
  }
  agent->health_ = std::thread([a = agent.get()] { a->WatchHealth(); });
  return agent;
}

void Agent::SetScheduleHealth(bool healthy) {
  std::lock_guard<std::mutex> l(mu_);
  schedule_healthy_ = healthy;
  for (grpc::Server* s : {server_.get(), health_server_.get()}) {
    if (s != nullptr) {
      s->GetHealthCheckService()->SetServingStatus(kScheduleHealthService, healthy);
    }
  }
}

absl::StatusOr<std::string> Agent::Reload() {
  std::string report;
  absl::Status first_error;
  auto part = [&](const char* name, absl::StatusOr<std::string> r) {
    absl::StrAppend(&report, report.empty() ? "" : "\n", name, ": ",
                    r.ok() ? *r : absl::StrCat("kept the old ones: ",
                                               r.status().message()));
    if (!r.ok() && first_error.ok()) first_error = r.status();
  };
  if (auth_) part("tokens", auth_->Reload());
  if (tls_) part("tls", tls_->Reload());
  if (report.empty()) report = "nothing to reload (no token file, no TLS)";
  if (!first_error.ok()) {
    return absl::Status(first_error.code(), report);
  }
  return report;
}

// grpc.health.v1.Health says SERVING only while the node knows a leader.
void Agent::WatchHealth() {
  std::unique_lock<std::mutex> l(mu_);
  bool serving = false;
  while (!stopping_) {
    l.unlock();
    // A node that cannot say within 5 s whether it knows a leader counts as
    // not serving.
    auto st = node_->Status(absl::Now() + absl::Seconds(5));
    bool now = st.ok() && st->leader_id != 0;
    l.lock();
    if (stopping_) break;
    if (now != serving) {
      serving = now;
      // The overall status (""); the schedule's has a name of its own.
      server_->GetHealthCheckService()->SetServingStatus("", serving);
      if (health_server_) {
        health_server_->GetHealthCheckService()->SetServingStatus("", serving);
      }
    }
    cv_.wait_for(l, std::chrono::milliseconds(200));
  }
}

void Agent::Shutdown(absl::Duration grace) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  // A partly started agent (Start failed) has only some of these.
  if (health_.joinable()) health_.join();
  if (job_) job_->Stop();  // no scheduled snapshot starts from now on
  metrics_.reset();
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    // gRPC cancels what is still running at the deadline, but a handler
    // blocked on a client that stopped reading may take seconds more to
    // notice; cancel our streams ourselves when the grace period ends.
    std::mutex m;
    std::condition_variable done_cv;
    bool done = false;
    std::thread canceller([&] {
      std::unique_lock<std::mutex> l(m);
      if (!done_cv.wait_for(l, absl::ToChronoNanoseconds(grace),
                            [&] { return done; })) {
        snapshots_->StopStreams();
      }
    });
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    {
      std::lock_guard<std::mutex> l(m);
      done = true;
    }
    done_cv.notify_all();
    canceller.join();
    server_->Wait();
  }
  if (health_server_) health_server_->Shutdown();
  job_.reset();
  StopEngine();
}

absl::Status Agent::StartEngine(AgentConfig* config) {
  if (config->engine == kEngineEmbedded) {
    config->node.data_dir = config->data_dir;
    if (config->node.agent_address.empty()) {
      config->node.agent_address = config->listen;
    }
    SA_ASSIGN_OR_RETURN(std::unique_ptr<EmbeddedNode> node,
                        EmbeddedNode::Start(config->node));
    // Give the node a moment to find a leader, so that a single-node agent
    // serves writes as soon as its port is open. A cluster whose peers are
    // not up yet starts serving anyway (health says NOT_SERVING until a
    // leader).
    node->WaitForLeader(absl::Now() + absl::Seconds(3)).IgnoreError();
    embedded_ = node.get();
    node_ = std::move(node);
    return absl::OkStatus();
  }
  if (config->engine != kEngineEtcd) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--engine must be embedded or etcd, got \"", config->engine, "\""));
  }
  EtcdAgentConfig& e = config->etcd;
  // The etcd client first: ClusterRestore talks to the member with it.
  SA_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> probe,
                      EtcdClient::Create(e.node.client));
  std::unique_ptr<EtcdNode> node;
  if (!e.exec.empty()) {
    SA_ASSIGN_OR_RETURN(EtcdCommand command, ParseEtcdCommand(e.exec));
    ClusterRestoreConfig rc;
    rc.state_dir = config->data_dir + "/etcd-restore";
    rc.command = std::move(command);
    rc.etcdctl = e.etcdctl;
    rc.keep_pre_restore = e.keep_pre_restore;
    rc.agents = e.node.agents;
    rc.peers = e.peers;
    rc.max_state_bytes = config->service.limits.max_state_bytes;
    rc.resolve_after = e.resolve_after;
    etcd_client_ = std::move(probe);
    SA_ASSIGN_OR_RETURN(etcd_restore_,
                        ClusterRestore::Start(std::move(rc), etcd_client_.get()));
  }
  SA_ASSIGN_OR_RETURN(node, EtcdNode::Create(e.node, etcd_restore_.get()));
  // Give the member a moment to answer (a supervised one is just starting).
  for (absl::Time until = absl::Now() + absl::Seconds(5); absl::Now() < until;) {
    if (node->CheckLeader(absl::Now() + absl::Seconds(1)).ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  node_ = std::move(node);
  return absl::OkStatus();
}

void Agent::StopEngine() {
  if (embedded_ != nullptr) embedded_->Stop();
  etcd_restore_.reset();  // stops the supervised etcd
}

Agent::~Agent() { Shutdown(absl::ZeroDuration()); }

}  // namespace snapshot
