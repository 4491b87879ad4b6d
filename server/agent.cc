#include "server/agent.h"

#include <fstream>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the ", what, " file ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const AgentConfig& c) {
  if (c.tls_cert.empty() && c.tls_key.empty()) {
    if (!c.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(
          "--tls-client-ca needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (c.tls_cert.empty() || c.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls-cert and --tls-key");
  }
  grpc::SslServerCredentialsOptions opts;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  SA_ASSIGN_OR_RETURN(pair.private_key, ReadPem(c.tls_key, "TLS key"));
  SA_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem(c.tls_cert, "TLS certificate"));
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  if (!c.tls_client_ca.empty()) {
    SA_ASSIGN_OR_RETURN(opts.pem_root_certs, ReadPem(c.tls_client_ca, "client CA"));
    opts.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentConfig config) {
  if (config.listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen \"", config.listen, "\" is not HOST:PORT"));
  }
  const bool tls = !config.tls_cert.empty();
  const bool tokens = !config.token_file.empty();
  if (!IsLoopbackAddress(config.listen) && !(tls && tokens) && !config.insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to listen on ", config.listen,
        " (not a loopback address) without both TLS (--tls-cert, --tls-key) "
        "and tokens (--token-file); pass --insecure to do it anyway"));
  }
  SA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   Credentials(config));
  std::unique_ptr<Agent> agent(new Agent());
  if (tokens) {
    SA_ASSIGN_OR_RETURN(TokenAuth auth, TokenAuth::LoadFile(config.token_file));
    agent->auth_ = std::make_unique<TokenAuth>(std::move(auth));
  }
  if (config.node.agent_address.empty()) config.node.agent_address = config.listen;
  SA_ASSIGN_OR_RETURN(agent->node_, EmbeddedNode::Start(config.node));
  // Give the node a moment to find a leader, so that a single-node agent
  // serves writes as soon as its port is open. A cluster whose peers are not
  // up yet starts serving anyway (health says NOT_SERVING until a leader).
  agent->node_->WaitForLeader(absl::Now() + absl::Seconds(3)).IgnoreError();

  config.service.spool_dir = config.node.data_dir;
  config.service.auth = agent->auth_.get();
  agent->snapshots_ =
      std::make_unique<SnapshotServiceImpl>(agent->node_.get(), config.service);
  agent->kv_ = std::make_unique<KeyValueServiceImpl>(agent->node_.get(),
                                                     config.service);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, creds, &port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.RegisterService(agent->snapshots_.get());
  builder.RegisterService(agent->kv_.get());
  agent->server_ = builder.BuildAndStart();
  if (!agent->server_ || port == 0) {
    agent->node_->Stop();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on ", config.listen,
        " (address in use, or not an address of this machine?)"));
  }
  agent->address_ =
      absl::StrCat(config.listen.substr(0, config.listen.rfind(':')), ":", port);
  agent->server_->GetHealthCheckService()->SetServingStatus(false);
  if (!config.health_listen.empty()) {
    grpc::ServerBuilder health_builder;
    int health_port = 0;
    health_builder.AddListeningPort(config.health_listen,
                                    grpc::InsecureServerCredentials(), &health_port);
    agent->health_server_ = health_builder.BuildAndStart();
    if (!agent->health_server_ || health_port == 0) {
      agent->server_->Shutdown();
      agent->node_->Stop();
      return absl::FailedPreconditionError(
          absl::StrCat("cannot listen on --health-listen ", config.health_listen));
    }
    agent->health_server_->GetHealthCheckService()->SetServingStatus(false);
  }
  agent->health_ = std::thread([a = agent.get()] { a->WatchHealth(); });
  return agent;
}

// grpc.health.v1.Health says SERVING only while the node knows a leader.
void Agent::WatchHealth() {
  std::unique_lock<std::mutex> l(mu_);
  bool serving = false;
  while (!stopping_) {
    l.unlock();
    auto st = node_->Status();
    bool now = st.ok() && st->leader_id != 0;
    l.lock();
    if (stopping_) break;
    if (now != serving) {
      serving = now;
      server_->GetHealthCheckService()->SetServingStatus(serving);
      if (health_server_) {
        health_server_->GetHealthCheckService()->SetServingStatus(serving);
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
  if (node_) node_->Stop();
}

Agent::~Agent() { Shutdown(absl::ZeroDuration()); }

}  // namespace snapshot
