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
#include "base/thread_name.h"
#include "core/restore_if_empty.h"
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
// of the calls; and connections that hold a descriptor for nothing are
// closed — one that does not finish its handshake (TLS, or HTTP/2's preface)
// within `handshake_timeout`, one without a call for `max_connection_idle`.
void ServerArguments(grpc::ServerBuilder* b, const AgentConfig& config) {
  b->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  b->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                        static_cast<int>(absl::ToInt64Milliseconds(config.handshake_timeout)));
  b->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                        static_cast<int>(absl::ToInt64Milliseconds(config.max_connection_idle)));
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

namespace {

// The configuration's own consistency, before anything starts.
absl::Status CheckConfig(const AgentConfig& config) {
  const bool tls = !config.tls_cert.empty() || !config.tls_key.empty();
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  if (!tls && !config.tls_client_ca.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  absl::StatusOr<bool> local = IsLoopbackAddress(config.listen);
  if (!local.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--listen: ", local.status().message()));
  }
  if (!*local && !(tls && !config.token_file.empty()) && !config.insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to listen on ", config.listen,
        " (not an address that resolves to loopback only) without both TLS "
        "(--tls-cert, --tls-key) and tokens (--token-file); pass --insecure "
        "to do it anyway"));
  }
  return absl::OkStatus();
}

// A plaintext server with only grpc.health.v1.Health on `address`.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartHealthServer(const std::string& address,
                                                                const AgentConfig& config) {
  grpc::ServerBuilder builder;
  ServerArguments(&builder, config);
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on --health-listen ", address,
        " (address in use, or not an address of this machine)"));
  }
  server->GetHealthCheckService()->SetServingStatus(false);
  return server;
}

}  // namespace

// The steps of a start, in order. A step that fails returns its error; the
// agent's destructor (Shutdown) then closes whatever the earlier steps
// started, whichever they were.
absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentConfig config) {
  SA_RETURN_IF_ERROR(CheckConfig(config));
  if (config.data_dir.empty()) config.data_dir = config.node.data_dir;
  std::unique_ptr<Agent> agent(new Agent());
  SA_RETURN_IF_ERROR(agent->LoadCredentials(config));
  SA_RETURN_IF_ERROR(agent->OpenDataDir(config.data_dir));
  SA_RETURN_IF_ERROR(agent->StartEngine(&config));
  SA_RETURN_IF_ERROR(agent->StartJob(&config));
  agent->StartServices(&config);
  SA_RETURN_IF_ERROR(agent->StartServers(config));
  if (!config.metrics_listen.empty()) {
    SA_ASSIGN_OR_RETURN(agent->metrics_, StartMetricsServer(config.metrics_listen));
  }
  if (config.restore_if_empty) {
    agent->settling_ = true;
    agent->restore_timeout_ = config.service.restore_timeout;
    agent->restore_if_empty_ = std::thread([a = agent.get()] { a->RunRestoreIfEmpty(); });
  }
  agent->health_ = std::thread([a = agent.get()] { a->WatchHealth(); });
  return agent;
}

absl::Status Agent::LoadCredentials(const AgentConfig& config) {
  if (!config.tls_cert.empty()) {
    SA_ASSIGN_OR_RETURN(tls_, ReloadableTls::Load(
                                  {config.tls_cert, config.tls_key, config.tls_client_ca}));
  }
  if (!config.token_file.empty()) {
    SA_ASSIGN_OR_RETURN(auth_, Authorizer::FromFile(config.token_file));
  }
  return absl::OkStatus();
}

absl::Status Agent::OpenDataDir(const std::string& dir) {
  SA_ASSIGN_OR_RETURN(lock_, DirLock::Acquire(dir));
  SA_ASSIGN_OR_RETURN(SpoolCleanup cleaned, RemoveStaleSpools(dir));
  if (cleaned.files > 0) {
    Log(LogLevel::kWarning, "removed stale restore spool files",
        {{"dir", dir}, {"files", cleaned.files}, {"bytes_freed", cleaned.bytes}});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RemoteStore>> Agent::OpenRemote(AgentConfig* config) {
  SA_ASSIGN_OR_RETURN(s3::S3Url url, s3::ParseS3Url(config->remote_url));
  config->remote_s3.bucket = url.bucket;
  SA_ASSIGN_OR_RETURN(std::shared_ptr<s3::CredentialsProvider> creds,
                      s3::DefaultCredentialsChain(config->remote_s3.region));
  auto client = std::make_shared<s3::Client>(config->remote_s3, creds);
  // A store that refuses the agent's configuration (credentials, bucket)
  // stops the start; one that cannot be reached now is retried by the
  // passes, with the remote's health NOT_SERVING meanwhile.
  absl::Status s = client->CheckBucket();
  if (!s.ok() && s.code() != absl::StatusCode::kUnavailable) {
    return absl::Status(s.code(), absl::StrCat("remote ", config->remote_url, ": ", s.message()));
  }
  if (!s.ok()) {
    Log(LogLevel::kWarning, "the remote store cannot be reached; uploads wait for it",
        {{"remote", config->remote_url}, {"error", s.message()}});
  }
  Log(LogLevel::kInfo, "remote store",
      {{"remote", config->remote_url},
       {"cluster", config->remote.cluster},
       {"credentials", creds->Source()}});
  return std::make_unique<RemoteStore>(
      client, url.prefix, PartSizeFor(config->service.limits.max_archive_bytes),
      config->remote_parallel);
}

absl::Status Agent::CheckRemoteAndLoadKeys(AgentConfig* config) {
  if (config->restore_if_empty && config->remote_url.empty()) {
    return absl::InvalidArgumentError("--restore-if-empty restores from the remote store: it needs --remote");
  }
  if (config->encrypt_local && (config->encrypt_to_file.empty() || config->identity_file.empty())) {
    return absl::InvalidArgumentError(
        "--encrypt-local needs --encrypt-to (whom to encrypt to) and --identity-file (to read the "
        "catalog back)");
  }
  if (config->remote_url.empty() && !config->encrypt_local &&
      (!config->encrypt_to_file.empty() || !config->identity_file.empty())) {
    return absl::InvalidArgumentError(
        "--encrypt-to and --identity-file encrypt the remote store's copies (--remote) or, with "
        "--encrypt-local, the local catalog");
  }
  RemoteOptions& r = config->remote;
  if (!config->encrypt_to_file.empty()) {
    absl::StatusOr<std::vector<age::X25519Recipient>> recipients =
        age::ReadRecipientsFile(config->encrypt_to_file);
    if (!recipients.ok()) {
      return absl::Status(recipients.status().code(),
                          absl::StrCat("--encrypt-to: ", recipients.status().message()));
    }
    r.recipients = std::move(*recipients);
  }
  if (!config->identity_file.empty()) {
    absl::StatusOr<std::vector<age::X25519Identity>> identities =
        age::ReadIdentityFile(config->identity_file);
    if (!identities.ok()) {
      return absl::Status(identities.status().code(),
                          absl::StrCat("--identity-file: ", identities.status().message()));
    }
    r.identities = std::move(*identities);
  }
  if (!r.recipients.empty() && !r.identities.empty()) {
    // Both given: the agent must be able to read back what it writes, or a
    // typo in one file would go unnoticed until the day of a restore.
    bool opens = false;
    for (const age::X25519Identity& id : r.identities) {
      for (const age::X25519Recipient& to : r.recipients) opens = opens || id.recipient() == to;
    }
    if (!opens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--identity-file ", config->identity_file, " holds no key for any recipient of --encrypt-to ",
          config->encrypt_to_file, ": the agent could not read its own uploads back"));
    }
  }
  return absl::OkStatus();
}

absl::Status Agent::StartJob(AgentConfig* config) {
  restorer_ = std::make_unique<Restorer>(node_.get(), config->data_dir, config->service.limits);
  JobOptions& job = config->job;
  if (job.snapshot_dir.empty()) job.snapshot_dir = config->data_dir + "/snapshots";
  job.take.compress_threads = CompressThreads(config->service.compress_threads);
  job.take.limits = config->service.limits;
  job.metrics = &Metrics::Get();
  JobRemote remote;
  SA_RETURN_IF_ERROR(CheckRemoteAndLoadKeys(config));
  if (config->encrypt_local) {
    job.encryption.recipients = config->remote.recipients;
    job.encryption.identities = config->remote.identities;
  }
  if (!config->remote_url.empty()) {
    SA_ASSIGN_OR_RETURN(remote.store, OpenRemote(config));
    remote.options = config->remote;
    remote.options.journal_dir = config->data_dir + "/remote-uploads";
    remote.options.spool_dir = config->data_dir;
    remote.options.max_archive_bytes = config->service.limits.max_archive_bytes;
    remote.on_health = [this](bool healthy) { SetHealth(kRemoteHealthService, healthy); };
  }
  absl::StatusOr<std::unique_ptr<SnapshotJob>> started = SnapshotJob::Start(
      node_.get(), job, [this](bool healthy) { SetHealth(kScheduleHealthService, healthy); },
      std::move(remote));
  if (!started.ok()) {
    return absl::Status(started.status().code(),
                        absl::StrCat("snapshot catalog ", job.snapshot_dir, ": ",
                                     started.status().message()));
  }
  job_ = std::move(*started);
  return absl::OkStatus();
}

void Agent::StartServices(AgentConfig* config) {
  config->service.auth = auth_.get();
  snapshots_ = std::make_unique<SnapshotServiceImpl>(node_.get(), restorer_.get(),
                                                     config->service, job_.get());
  if (embedded_ != nullptr) {
    kv_ = std::make_unique<KeyValueServiceImpl>(embedded_, config->service);
  }
  if (etcd_restore_ != nullptr) {
    etcd_service_ = std::make_unique<EtcdRestoreServiceImpl>(etcd_restore_.get(), auth_.get(),
                                                             snapshots_->stream_limits());
  }
}

absl::Status Agent::StartServers(const AgentConfig& config) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ServerArguments(&builder, config);
  int port = 0;
  builder.AddListeningPort(config.listen,
                           tls_ ? tls_->Credentials() : grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  {
    // The RPC frame: every call's method, for its Rpc (server/rpc.h).
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> frame;
    frame.push_back(MakeRpcFrameFactory());
    builder.experimental().SetInterceptorCreators(std::move(frame));
  }
  builder.RegisterService(snapshots_.get());
  if (kv_) builder.RegisterService(kv_.get());
  if (etcd_service_) builder.RegisterService(etcd_service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on ", config.listen,
        " (address in use: is another agent running with it? Or not an "
        "address of this machine)"));
  }
  address_ = absl::StrCat(config.listen.substr(0, config.listen.rfind(':')), ":", port);
  server_->GetHealthCheckService()->SetServingStatus(false);
  if (!config.health_listen.empty()) {
    SA_ASSIGN_OR_RETURN(health_server_, StartHealthServer(config.health_listen, config));
  }
  bool schedule_healthy;
  {
    std::lock_guard<std::mutex> l(mu_);
    schedule_healthy = schedule_healthy_;
  }
  SetHealth(kScheduleHealthService, schedule_healthy);  // now that the servers exist
  if (job_ && job_->remote() != nullptr) {
    bool remote_healthy;
    {
      std::lock_guard<std::mutex> l(mu_);
      remote_healthy = remote_healthy_;
    }
    SetHealth(kRemoteHealthService, remote_healthy);
  }
  return absl::OkStatus();
}

void Agent::SetHealth(const char* service, bool healthy) {
  std::lock_guard<std::mutex> l(mu_);
  (std::string(service) == kRemoteHealthService ? remote_healthy_ : schedule_healthy_) = healthy;
  for (grpc::Server* s : {server_.get(), health_server_.get()}) {
    if (s != nullptr) s->GetHealthCheckService()->SetServingStatus(service, healthy);
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

void Agent::RunRestoreIfEmpty() {
  SetThreadName("sa-auto-restore");
  std::string id;
  const absl::Time start = absl::Now();
  absl::StatusOr<RestoreIfEmptyResult> r =
      RestoreIfEmpty(node_.get(), restorer_.get(), job_.get(),
                     absl::Now() + absl::Minutes(2) + restore_timeout_, &shutting_down_, &id);
  if (r.ok() || r.status().code() != absl::StatusCode::kCancelled) {
    Metrics::Get().RestoreIfEmpty(r.ok() ? ResultName(*r) : "failure");
  }
  if (!r.ok()) {
    Log(LogLevel::kError,
        "--restore-if-empty: the restore failed; the node was left as it is and the next start "
        "tries again",
        {{"error", r.status().message()}, {"snapshot", id}});
  } else if (*r == RestoreIfEmptyResult::kRestored) {
    Metrics::Get().RestoreApplied();
    Log(LogLevel::kWarning, "--restore-if-empty: the empty cluster was restored from the remote store",
        {{"snapshot", id}, {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  } else {
    Log(LogLevel::kInfo, "--restore-if-empty: nothing to do",
        {{"reason", ResultName(*r)}});
  }
  settling_ = false;
  cv_.notify_all();
}

// grpc.health.v1.Health says SERVING only while the node knows a leader (and
// a --restore-if-empty is settled).
void Agent::WatchHealth() {
  SetThreadName("sa-health");
  std::unique_lock<std::mutex> l(mu_);
  bool serving = false;
  while (!stopping_) {
    l.unlock();
    // A node that cannot say within 5 s whether it knows a leader counts as
    // not serving.
    auto st = node_->Status(absl::Now() + absl::Seconds(5));
    bool now = st.ok() && st->leader_id != 0 && !settling_;
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
  shutting_down_ = true;
  if (restore_if_empty_.joinable()) restore_if_empty_.join();
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
        // A cluster restore's waits and peer calls end too (what is
        // decided stays recorded for the next start).
        if (etcd_restore_) etcd_restore_->Stop();
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
    e.node.agents = AgentsOrSelf(e.node.agents, command, config->listen);
    ClusterRestoreConfig rc;
    rc.state_dir = config->data_dir + "/etcd-restore";
    rc.command = std::move(command);
    rc.etcdctl = e.etcdctl;
    rc.keep_pre_restore = e.keep_pre_restore;
    rc.agents = e.node.agents;
    rc.connect = PeerParticipants(e.peers);
    rc.max_state_bytes = config->service.limits.max_state_bytes;
    rc.resolve_after = e.resolve_after;
    rc.stall_timeout = config->service.idle_timeout / 2;
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
