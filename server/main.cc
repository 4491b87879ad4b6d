// snapshot-agent: the daemon. Flags are documented in --help and README.md.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "core/limits.h"
#include "server/agent.h"

#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <systemd/sd-daemon.h>

ABSL_FLAG(std::string, listen, "127.0.0.1:7150",
          "host:port of the gRPC API. A non-loopback address needs TLS and "
          "--token-file, or --insecure.");
ABSL_FLAG(std::string, health_listen, "",
          "Optional host:port of a plaintext server offering only "
          "grpc.health.v1.Health (for Kubernetes gRPC probes, which cannot "
          "use TLS). Carries no data.");
ABSL_FLAG(std::string, data_dir, "/var/lib/snapshot-agent",
          "Directory of the Raft log and snapshots, and of restore spool "
          "files; created (mode 0700) if missing.");
ABSL_FLAG(uint64_t, raft_id, 1, "This node's Raft id (a positive integer).");
ABSL_FLAG(std::string, raft_address, "127.0.0.1:7151",
          "IPV4:PORT the Raft transport listens on.");
ABSL_FLAG(std::string, raft_bind, "",
          "Optional IPV4:PORT the Raft transport binds to instead of "
          "--raft-address (same port), e.g. 0.0.0.0:7151 when the advertised "
          "--raft-address is a Kubernetes Service IP.");
ABSL_FLAG(std::string, peers, "",
          "The static cluster, this node included: "
          "ID=RAFT_HOST:PORT[@AGENT_HOST:PORT],... e.g. "
          "1=127.0.0.1:7151@127.0.0.1:7150,2=127.0.0.1:7251@127.0.0.1:7250. "
          "Empty: a single-node cluster. Give every node the same list.");
ABSL_FLAG(std::string, engine, "embedded",
          "The Raft system the agent snapshots: embedded (its own Raft node and "
          "key-value store) or etcd (the local etcd member; see --etcd-*).");
ABSL_FLAG(std::string, etcd_endpoint, "http://127.0.0.1:2379",
          "etcd engine: the member's client URL (http:// or https://).");
ABSL_FLAG(std::string, etcd_cacert, "", "etcd engine: CA of etcd's certificate.");
ABSL_FLAG(std::string, etcd_cert, "",
          "etcd engine: client certificate for etcd (with --etcd-key).");
ABSL_FLAG(std::string, etcd_key, "", "etcd engine: client key for etcd.");
ABSL_FLAG(std::string, etcd_user, "",
          "etcd engine: etcd user, when etcd has authentication enabled.");
ABSL_FLAG(std::string, etcd_password_file, "",
          "etcd engine: file whose first line is --etcd-user's password.");
ABSL_FLAG(std::string, etcd_exec, "",
          "etcd engine, supervised mode: etcd's command line (it must give "
          "--name, --data-dir, --initial-cluster and "
          "--initial-advertise-peer-urls). The agent runs etcd as its child, "
          "restarts it if it dies, stops it on SIGTERM, and can restore the "
          "cluster. Without it: Take and Verify only.");
ABSL_FLAG(std::string, etcd_agents, "",
          "etcd engine: NAME=HOST:PORT,... the agent of every etcd member by "
          "member name (this one included), for restores.");
ABSL_FLAG(std::string, etcdctl, "etcdctl",
          "etcd engine: the etcdctl (3.4) a restore runs (snapshot restore).");
ABSL_FLAG(absl::Duration, etcd_resolve_after, absl::Seconds(60),
          "etcd engine: a member left prepared or stopped by a restore this "
          "long without word from the coordinator asks it what was decided.");
ABSL_FLAG(bool, etcd_keep_pre_restore, false,
          "etcd engine: keep DATA_DIR.pre-restore-ID after a restore.");
ABSL_FLAG(std::string, peer_ca, "",
          "CA of the other agents' certificates (agent-to-agent calls use TLS "
          "when set; default: --tls-client-ca when TLS is on).");
ABSL_FLAG(std::string, peer_cert, "",
          "Certificate this agent presents to other agents (default "
          "--tls-cert; it needs the clientAuth usage for mutual TLS).");
ABSL_FLAG(std::string, peer_key, "", "Key of --peer-cert (default --tls-key).");
ABSL_FLAG(std::string, peer_token_file, "",
          "File whose first line is an admin token of the other agents "
          "(default: the first admin token of --token-file).");
ABSL_FLAG(std::string, tls_cert, "", "Server certificate chain (PEM).");
ABSL_FLAG(std::string, tls_key, "", "Server private key (PEM).");
ABSL_FLAG(std::string, tls_client_ca, "",
          "CA (PEM) that client certificates must be signed by: enables "
          "mutual TLS.");
ABSL_FLAG(std::string, token_file, "",
          "Bearer tokens, one \"read TOKEN\" or \"admin TOKEN\" per line "
          "(mode 0600). read: TakeSnapshot, VerifySnapshot, GetStatus, "
          "ListSnapshots, FetchSnapshot, Get, List; admin: everything. Empty: no "
          "authentication.");
ABSL_FLAG(bool, insecure, false,
          "Allow a non-loopback --listen without TLS and tokens.");
ABSL_FLAG(int, max_streams, 4,
          "Snapshot streams (take, verify, restore) served at once.");
ABSL_FLAG(int, compress_threads, 0,
          "Threads compressing a snapshot archive (gzip members in "
          "parallel); 0 = one per core.");
ABSL_FLAG(int, max_message_bytes, 8 << 20, "Largest gRPC message received.");
ABSL_FLAG(absl::Duration, handshake_timeout, absl::Seconds(10),
          "A connection whose TLS or HTTP/2 handshake is not done by then is closed.");
ABSL_FLAG(absl::Duration, max_connection_idle, absl::Seconds(60),
          "A connection without a call for this long is closed (clients reconnect at "
          "their next call).");
ABSL_FLAG(uint64_t, max_archive_bytes, 0,
          "Largest archive accepted by VerifySnapshot and RestoreSnapshot; 0 = "
          "enough for any state within --max-state-bytes (a smaller value that "
          "cannot hold one is refused at start-up).");
ABSL_FLAG(uint64_t, max_state_bytes, 0,
          "Largest snapshot state (state.bin) the agent takes, verifies and "
          "restores: a larger state is refused by TakeSnapshot and scheduled "
          "snapshots before any byte is written, and by VerifySnapshot and "
          "RestoreSnapshot from the archive's tar header before it is "
          "decompressed. 0 = the engine's default: 1 GiB less 1 MiB for the "
          "embedded engine, also its ceiling (it holds its state in memory, "
          "and libraft 0.15 cannot read back a Raft snapshot of 2 GiB, which "
          "holds the state twice during a restore), 8 GiB for etcd (the "
          "largest --quota-backend-bytes etcd recommends). Give every agent "
          "of a cluster the same value.");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "End a snapshot stream that moves no message for this long "
          "(RESOURCE_EXHAUSTED). With the etcd engine, a restore also drops "
          "another member's agent that takes none of the forwarded state for "
          "half of it (UNAVAILABLE).");
ABSL_FLAG(uint64_t, min_transfer_rate, 64 << 10,
          "End a snapshot stream that moves fewer than this many bytes per "
          "second, averaged over each --idle-timeout window "
          "(RESOURCE_EXHAUSTED), so that a trickling client cannot hold a "
          "stream or the restore slot. 0 = no minimum.");
ABSL_FLAG(std::string, snapshot_dir, "",
          "The snapshot catalog: scheduled, on-demand and pre-restore "
          "snapshots (verified archives with their metadata). Default: "
          "DATA_DIR/snapshots.");
ABSL_FLAG(absl::Duration, schedule, absl::ZeroDuration(),
          "Take a snapshot into the catalog this often (e.g. 1h, 15m) on the "
          "agent whose node is the leader; 0 = no schedule.");
ABSL_FLAG(absl::Duration, schedule_timeout, absl::Minutes(30),
          "Deadline of one scheduled snapshot.");
ABSL_FLAG(int, max_failures, 3,
          "Scheduled snapshots failed in a row before the health service "
          "snapshot.v1.Schedule says NOT_SERVING.");
ABSL_FLAG(std::string, remote, "",
          "Copy every stored snapshot to S3-compatible object storage at "
          "s3://BUCKET/PREFIX (docs/remote.md); credentials from the AWS "
          "chain (environment, shared files, web identity, container, "
          "instance metadata). Empty: no remote.");
ABSL_FLAG(std::string, remote_cluster, "",
          "This cluster's name under the remote prefix (required with "
          "--remote; the same on every agent of the cluster): snapshots live "
          "under PREFIX/NAME/, and an agent changes only its own cluster's.");
ABSL_FLAG(std::string, s3_endpoint, "",
          "S3 endpoint URL (http or https); empty: AWS's regional endpoint.");
ABSL_FLAG(std::string, s3_region, "us-east-1", "S3 region (signing scope).");
ABSL_FLAG(std::string, s3_ca, "", "CA bundle (PEM) for an https --s3-endpoint.");
ABSL_FLAG(std::string, s3_addressing, "auto",
          "path, virtual (bucket as a host name) or auto (virtual on AWS, "
          "path on a custom --s3-endpoint).");
ABSL_FLAG(std::string, remote_origins, "scheduled,on-demand,pre-restore",
          "Which stored snapshots are uploaded, by origin.");
ABSL_FLAG(absl::Duration, remote_interval, absl::Minutes(1),
          "How often the leader's agent uploads what is not yet remote and "
          "applies remote retention (and after every stored snapshot).");
ABSL_FLAG(int, remote_keep_last, 24, "Remote retention: keep the newest N snapshots.");
ABSL_FLAG(int, remote_keep_hourly, 48, "Remote retention: and of each of the last N hours.");
ABSL_FLAG(int, remote_keep_daily, 30, "Remote retention: and of each of the last N days.");
ABSL_FLAG(int, remote_keep_weekly, 12, "Remote retention: and of each of the last N weeks.");
ABSL_FLAG(int, remote_keep_monthly, 12, "Remote retention: and of each of the last N months.");
ABSL_FLAG(uint64_t, remote_max_bytes, 0,
          "Remote retention: drop the oldest kept snapshots beyond this many "
          "bytes; 0 = no budget. The newest is never deleted.");
ABSL_FLAG(std::string, remote_verify, "none",
          "none or read. With none, an upload is checked part by part "
          "(SHA-256, by the store) and by its size; with read, each upload is "
          "also downloaded again and verified completely (twice the traffic).");
ABSL_FLAG(absl::Duration, remote_verify_interval, absl::Hours(24),
          "Every so often the leader's agent downloads one stored remote "
          "snapshot, in turn, and verifies it (rot, a bad upload); 0 = never.");
ABSL_FLAG(std::string, restore_if_empty, "",
          "latest: when the node holds no state at all (a brand-new cluster), "
          "the leader's agent restores the newest snapshot of --remote-cluster "
          "from the remote store, once; never when the node holds any data.");
ABSL_FLAG(std::string, encrypt_to, "",
          "Encrypt uploads to the age recipients in this file (\"age1...\" "
          "lines, as age -R): objects become ID.snap.age, which `age -d` "
          "decrypts. Refuses to start if the file cannot be used.");
ABSL_FLAG(std::string, identity_file, "",
          "age identity file (age-keygen's form, mode 0600): lets the agent "
          "fetch, verify and restore encrypted remote snapshots. With "
          "--encrypt-to it must hold a key of one of the recipients.");
ABSL_FLAG(bool, encrypt_local, false,
          "Encrypt the local catalog's files too (ID.snap.age, to --encrypt-to's "
          "recipients; needs --identity-file to read them back).");
ABSL_FLAG(std::string, s3_sse, "",
          "Server-side encryption asked of the store: AES256 or aws:kms "
          "(for buckets whose policy demands the header).");
ABSL_FLAG(std::string, s3_sse_kms_key_id, "", "The KMS key for --s3-sse=aws:kms.");
ABSL_FLAG(std::string, s3_sse_c_key_file, "",
          "SSE-C: a 256-bit customer key (32 bytes or their base64), mode "
          "0600, sent with every write and read of an archive.");
ABSL_FLAG(int, keep_last, 10, "Retention: keep the newest N snapshots.");
ABSL_FLAG(int, keep_hourly, 24, "Retention: and the newest of each of the last N hours.");
ABSL_FLAG(int, keep_daily, 7, "Retention: and of each of the last N days.");
ABSL_FLAG(int, keep_weekly, 4, "Retention: and of each of the last N weeks.");
ABSL_FLAG(int, keep_monthly, 6, "Retention: and of each of the last N months.");
ABSL_FLAG(uint64_t, max_catalog_bytes, 0,
          "Retention: drop the oldest kept snapshots while the catalog is "
          "larger (0 = no byte budget). The newest is always kept.");
ABSL_FLAG(bool, no_safety_snapshot, false,
          "Do not store the current state in the catalog before a restore "
          "(by default every restore can be undone by restoring its safety "
          "snapshot).");
ABSL_FLAG(std::string, metrics_listen, "",
          "Optional host:port of a plaintext HTTP endpoint serving Prometheus "
          "metrics at /metrics (no snapshot data; bind it to a private "
          "address).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(30),
          "On SIGTERM/SIGINT, how long running calls may take to finish "
          "before they are cancelled.");
ABSL_FLAG(std::string, log_level, "info",
          "debug, info (one line per RPC, lifecycle), warning or error.");
ABSL_FLAG(std::string, log_format, "text",
          "text (logfmt: key=value, quoted where needed) or json (one object "
          "per line). Both start with ts (UTC), level and msg.");

namespace {

// gRPC's own log lines go through ours, so that --log-format=json output
// stays one JSON object per line.
void LogFromGrpc(gpr_log_func_args* args) {
  snapshot::LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR
                                 ? snapshot::LogLevel::kError
                             : args->severity == GPR_LOG_SEVERITY_INFO
                                 ? snapshot::LogLevel::kInfo
                                 : snapshot::LogLevel::kDebug;
  snapshot::Log(level, "grpc",
                {{"message", args->message},
                 {"source", absl::StrCat(args->file, ":", args->line)}});
}

void Notify(const std::string& state) {
  // A no-op unless systemd (Type=notify) set NOTIFY_SOCKET.
  sd_notify(0, state.c_str());
}

// --log-level and --log-format, for this process and gRPC's own lines.
absl::Status SetUpLogging() {
  snapshot::LogLevel level;
  snapshot::LogFormat format;
  if (!snapshot::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return absl::InvalidArgumentError("--log-level must be debug, info, warning or error");
  }
  if (!snapshot::ParseLogFormat(absl::GetFlag(FLAGS_log_format), &format)) {
    return absl::InvalidArgumentError("--log-format must be text or json");
  }
  snapshot::SetLogOptions(level, format);
  gpr_set_log_function(&LogFromGrpc);
  return absl::OkStatus();
}

// The agent's configuration from its flags; INVALID_ARGUMENT naming the flag.
absl::StatusOr<snapshot::AgentConfig> ConfigFromFlags() {
  snapshot::AgentConfig c;
  c.listen = absl::GetFlag(FLAGS_listen);
  c.health_listen = absl::GetFlag(FLAGS_health_listen);
  c.data_dir = absl::GetFlag(FLAGS_data_dir);
  c.node.id = absl::GetFlag(FLAGS_raft_id);
  c.node.raft_address = absl::GetFlag(FLAGS_raft_address);
  c.node.raft_bind_address = absl::GetFlag(FLAGS_raft_bind);
  std::string peers = absl::GetFlag(FLAGS_peers);
  if (!peers.empty()) {
    auto parsed = snapshot::ParsePeers(peers);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--peers: ", parsed.status().message()));
    }
    c.node.peers = *parsed;
    for (const auto& m : c.node.peers) {
      if (m.id == c.node.id) c.node.agent_address = m.agent_address;
    }
  }
  c.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  c.tls_key = absl::GetFlag(FLAGS_tls_key);
  c.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  c.token_file = absl::GetFlag(FLAGS_token_file);
  c.insecure = absl::GetFlag(FLAGS_insecure);
  c.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  c.handshake_timeout = absl::GetFlag(FLAGS_handshake_timeout);
  c.max_connection_idle = absl::GetFlag(FLAGS_max_connection_idle);
  if (c.handshake_timeout < absl::Seconds(1) || c.max_connection_idle < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "--handshake-timeout and --max-connection-idle must be at least 1s");
  }
  c.service.max_concurrent_streams = absl::GetFlag(FLAGS_max_streams);
  c.service.compress_threads = absl::GetFlag(FLAGS_compress_threads);
  c.service.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  c.service.min_transfer_rate = absl::GetFlag(FLAGS_min_transfer_rate);
  c.job.snapshot_dir = absl::GetFlag(FLAGS_snapshot_dir);
  c.job.interval = absl::GetFlag(FLAGS_schedule);
  c.job.attempt_timeout = absl::GetFlag(FLAGS_schedule_timeout);
  c.job.max_failures = absl::GetFlag(FLAGS_max_failures);
  c.job.retention.keep_last = absl::GetFlag(FLAGS_keep_last);
  c.job.retention.keep_hourly = absl::GetFlag(FLAGS_keep_hourly);
  c.job.retention.keep_daily = absl::GetFlag(FLAGS_keep_daily);
  c.job.retention.keep_weekly = absl::GetFlag(FLAGS_keep_weekly);
  c.job.retention.keep_monthly = absl::GetFlag(FLAGS_keep_monthly);
  c.job.retention.max_bytes = absl::GetFlag(FLAGS_max_catalog_bytes);
  c.job.safety_snapshot = !absl::GetFlag(FLAGS_no_safety_snapshot);
  c.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  c.remote_url = absl::GetFlag(FLAGS_remote);
  const std::string if_empty = absl::GetFlag(FLAGS_restore_if_empty);
  if (!if_empty.empty() && if_empty != "latest") {
    return absl::InvalidArgumentError("--restore-if-empty must be latest (or empty)");
  }
  c.restore_if_empty = if_empty == "latest";
  c.encrypt_to_file = absl::GetFlag(FLAGS_encrypt_to);
  c.identity_file = absl::GetFlag(FLAGS_identity_file);
  c.encrypt_local = absl::GetFlag(FLAGS_encrypt_local);
  const snapshot::s3::ServerSideEncryption sse{absl::GetFlag(FLAGS_s3_sse),
                                               absl::GetFlag(FLAGS_s3_sse_kms_key_id),
                                               absl::GetFlag(FLAGS_s3_sse_c_key_file)};
  if (c.remote_url.empty() &&
      (!absl::GetFlag(FLAGS_remote_cluster).empty() || !absl::GetFlag(FLAGS_s3_endpoint).empty() ||
       !sse.sse.empty() || !sse.sse_c_key_file.empty())) {
    return absl::InvalidArgumentError(
        "--remote-cluster, --s3-endpoint and --s3-sse* need --remote=s3://BUCKET/PREFIX");
  }
  if (!c.remote_url.empty()) {
    c.remote.cluster = absl::GetFlag(FLAGS_remote_cluster);
    c.remote_s3.endpoint = absl::GetFlag(FLAGS_s3_endpoint);
    c.remote_s3.region = absl::GetFlag(FLAGS_s3_region);
    c.remote_s3.ca_file = absl::GetFlag(FLAGS_s3_ca);
    SA_RETURN_IF_ERROR(snapshot::s3::ApplyServerSideEncryption(sse, &c.remote_s3));
    const std::string addressing = absl::GetFlag(FLAGS_s3_addressing);
    if (addressing == "path") {
      c.remote_s3.addressing = snapshot::s3::ClientOptions::Addressing::kPath;
    } else if (addressing == "virtual") {
      c.remote_s3.addressing = snapshot::s3::ClientOptions::Addressing::kVirtualHosted;
    } else if (addressing != "auto") {
      return absl::InvalidArgumentError("--s3-addressing must be path, virtual or auto");
    }
    c.remote.origins.clear();
    for (absl::string_view o : absl::StrSplit(absl::GetFlag(FLAGS_remote_origins), ',',
                                              absl::SkipWhitespace())) {
      SA_ASSIGN_OR_RETURN(snapshot::SnapshotOrigin origin,
                          snapshot::ParseOrigin(absl::StripAsciiWhitespace(o)));
      c.remote.origins.insert(origin);
    }
    c.remote.interval = absl::GetFlag(FLAGS_remote_interval);
    const std::string verify = absl::GetFlag(FLAGS_remote_verify);
    if (verify != "none" && verify != "read") {
      return absl::InvalidArgumentError("--remote-verify must be none or read");
    }
    c.remote.verify_after_upload = verify == "read";
    c.remote.verify_interval = absl::GetFlag(FLAGS_remote_verify_interval);
    if (c.remote.verify_interval < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--remote-verify-interval must not be negative");
    }
    c.remote.max_failures = absl::GetFlag(FLAGS_max_failures);
    c.remote.retention.keep_last = absl::GetFlag(FLAGS_remote_keep_last);
    c.remote.retention.keep_hourly = absl::GetFlag(FLAGS_remote_keep_hourly);
    c.remote.retention.keep_daily = absl::GetFlag(FLAGS_remote_keep_daily);
    c.remote.retention.keep_weekly = absl::GetFlag(FLAGS_remote_keep_weekly);
    c.remote.retention.keep_monthly = absl::GetFlag(FLAGS_remote_keep_monthly);
    c.remote.retention.max_bytes = absl::GetFlag(FLAGS_remote_max_bytes);
    const snapshot::RetentionPolicy& r = c.remote.retention;
    if (r.keep_last < 0 || r.keep_hourly < 0 || r.keep_daily < 0 || r.keep_weekly < 0 ||
        r.keep_monthly < 0 || c.remote.interval <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "--remote-keep-* must not be negative and --remote-interval must be positive");
    }
  }
  if (c.job.interval < absl::ZeroDuration() || c.job.max_failures < 1 ||
      c.job.retention.keep_last < 0 || c.job.retention.keep_hourly < 0 ||
      c.job.retention.keep_daily < 0 || c.job.retention.keep_weekly < 0 ||
      c.job.retention.keep_monthly < 0) {
    return absl::InvalidArgumentError(
        "--schedule, --keep-* must not be negative and --max-failures must be at least 1");
  }
  c.engine = absl::GetFlag(FLAGS_engine);
  SA_ASSIGN_OR_RETURN(c.service.limits,
                      snapshot::MakeLimits(c.engine, absl::GetFlag(FLAGS_max_state_bytes),
                                           absl::GetFlag(FLAGS_max_archive_bytes)));
  if (c.engine == snapshot::kEngineEtcd) {
    snapshot::EtcdAgentConfig& e = c.etcd;
    e.node.client.endpoint = absl::GetFlag(FLAGS_etcd_endpoint);
    e.node.client.ca_file = absl::GetFlag(FLAGS_etcd_cacert);
    e.node.client.cert_file = absl::GetFlag(FLAGS_etcd_cert);
    e.node.client.key_file = absl::GetFlag(FLAGS_etcd_key);
    e.node.client.user = absl::GetFlag(FLAGS_etcd_user);
    e.node.client.password_file = absl::GetFlag(FLAGS_etcd_password_file);
    auto agents = snapshot::ParseEtcdAgents(absl::GetFlag(FLAGS_etcd_agents));
    if (!agents.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--etcd-agents: ", agents.status().message()));
    }
    e.node.agents = *agents;
    e.exec = absl::GetFlag(FLAGS_etcd_exec);
    e.etcdctl = absl::GetFlag(FLAGS_etcdctl);
    e.keep_pre_restore = absl::GetFlag(FLAGS_etcd_keep_pre_restore);
    e.resolve_after = absl::GetFlag(FLAGS_etcd_resolve_after);
    e.peers.ca_file = absl::GetFlag(FLAGS_peer_ca);
    if (e.peers.ca_file.empty()) e.peers.ca_file = c.tls_client_ca;
    e.peers.cert_file = absl::GetFlag(FLAGS_peer_cert);
    e.peers.key_file = absl::GetFlag(FLAGS_peer_key);
    if (e.peers.cert_file.empty() && !e.peers.ca_file.empty()) {
      e.peers.cert_file = c.tls_cert;
      e.peers.key_file = c.tls_key;
    }
    SA_ASSIGN_OR_RETURN(e.peers.token,
                        snapshot::PeerToken(absl::GetFlag(FLAGS_peer_token_file), c.token_file));
  }
  return c;

}

// Logs the one "serving" line, with what identifies this agent.
void LogServing(const snapshot::AgentConfig& c, const snapshot::Agent& agent) {
  std::vector<snapshot::LogField> serving = {
      {"version", snapshot::kProjectVersion},
      {"revision", snapshot::BuildRevision()},
      {"address", agent.address()},
      {"engine", c.engine},
      {"data_dir", c.data_dir}};
  if (c.engine == snapshot::kEngineEmbedded) {
    serving.emplace_back("raft_id", c.node.id);
    serving.emplace_back("raft_address", c.node.raft_address);
  } else {
    serving.emplace_back("etcd_endpoint", c.etcd.node.client.endpoint);
    serving.emplace_back("supervised", !c.etcd.exec.empty());
  }
  snapshot::Log(snapshot::LogLevel::kInfo, "serving", serving);
}

// Reloads on SIGHUP; returns at SIGTERM or SIGINT.
void ServeUntilStopped(snapshot::Agent* agent, const sigset_t& signals) {
  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig != SIGHUP) {
      snapshot::Log(snapshot::LogLevel::kInfo, "shutting down",
                    {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                     {"grace", absl::FormatDuration(absl::GetFlag(FLAGS_shutdown_grace))}});
      Notify("STOPPING=1");
      return;
    }
    Notify("RELOADING=1");
    absl::StatusOr<std::string> r = agent->Reload();
    for (absl::string_view line : absl::StrSplit(r.ok() ? *r : r.status().message(), '\n')) {
      snapshot::Log(r.ok() ? snapshot::LogLevel::kInfo : snapshot::LogLevel::kWarning,
                    "SIGHUP: reloaded", {{"what", line}});
    }
    Notify("READY=1");
  }
}

int Run() {
  absl::Status logging = SetUpLogging();
  absl::StatusOr<snapshot::AgentConfig> c =
      logging.ok() ? ConfigFromFlags() : absl::StatusOr<snapshot::AgentConfig>(logging);
  if (!c.ok()) {
    std::cerr << "snapshot-agent: " << c.status().message() << "\n";
    return 2;
  }

  // SIGTERM/SIGINT/SIGHUP are taken by sigwait below, never by another
  // thread (every thread inherits this mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Hold a reference to the gRPC library for the life of the process, so
  // that destroying the server does not run gRPC's global shutdown: in 1.51
  // that can block for seconds on the connection of a cancelled call whose
  // client stopped reading. Everything that must be flushed (Raft) is closed
  // by Shutdown() before main returns.
  grpc_init();
  auto agent = snapshot::Agent::Start(*c);
  if (!agent.ok()) {
    snapshot::Log(snapshot::LogLevel::kError, "cannot start",
                  {{"error", agent.status().message()}});
    return 1;
  }
  LogServing(*c, **agent);
  Notify(absl::StrCat("READY=1\nSTATUS=serving on ", (*agent)->address()));
  ServeUntilStopped(agent->get(), signals);
  (*agent)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  snapshot::Log(snapshot::LogLevel::kInfo, "stopped");
  return 0;
}

// Transparent huge pages for the heap: glibc (2.35 and later) advises the
// kernel to back what malloc takes from the system with huge pages when the
// tunable glibc.malloc.hugetlb=1 is set, and reads tunables only from the
// environment at start-up, so the agent runs itself again with it, once,
// before anything else (same process, same arguments). A restore builds a
// whole new state in fresh memory, and each 4 KiB page of it faults: on
// virtual machines where a fault is expensive (this project's machines:
// about a fifth of a restore's CPU samples were page faults), restores of
// 128 MiB took 9% less time at the median (docs/restore.md), peak RSS
// +10 MiB. Where the system has THP set to "never" the advice does nothing.
// An operator's own glibc.malloc.hugetlb (0 turns it off) is left as it is,
// and so is a set-user-ID start, where glibc ignores the environment's
// tunables. Under valgrind, set it (to 0 or 1): the run again would leave
// valgrind behind.
void UseHugePagesForTheHeap(char** argv) {
  constexpr char kTunable[] = "glibc.malloc.hugetlb";
  const char* tunables = getenv("GLIBC_TUNABLES");
  if (getauxval(AT_SECURE) != 0 || (tunables != nullptr && strstr(tunables, kTunable) != nullptr)) {
    return;
  }
  const std::string old = tunables == nullptr ? "" : tunables;
  const std::string value = absl::StrCat(old, old.empty() ? "" : ":", kTunable, "=1");
  if (setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Not run again (no /proc, say): go on as started, the environment as it was.
  if (tunables == nullptr) {
    unsetenv("GLIBC_TUNABLES");
  } else {
    setenv("GLIBC_TUNABLES", old.c_str(), 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  UseHugePagesForTheHeap(argv);
  // Few malloc arenas: every restore and take runs on threads of its own,
  // and glibc would otherwise give each new thread a fresh arena (up to 8
  // per core) that keeps its freed megabytes; RSS would creep up across
  // restores. MALLOC_ARENA_MAX in the environment still wins.
  if (getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
  absl::SetProgramUsageMessage(
      "takes, verifies and restores snapshots of a Raft node "
      "over gRPC.\n\n  snapshot-agent --data-dir=DIR [--listen=HOST:PORT] "
      "[--raft-id=N --raft-address=IP:PORT --peers=...] [TLS and token "
      "flags]\n\nSignals: SIGTERM/SIGINT stop gracefully (--shutdown-grace); "
      "SIGHUP reloads --token-file and the TLS files.\n\nFlags are written "
      "--flag_name or --flag-name.");
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] {
    return snapshot::VersionLine("snapshot-agent") + "\n";
  };
  absl::SetFlagsUsageConfig(usage);
  // Accept --data-dir as well as --data_dir.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> fixed;
  for (auto& a : args) {
    if (a.rfind("--", 0) == 0) {
      size_t end = a.find('=');
      for (size_t i = 2; i < (end == std::string::npos ? a.size() : end); ++i) {
        if (a[i] == '-') a[i] = '_';
      }
    }
    fixed.push_back(&a[0]);
  }
  absl::ParseCommandLine(static_cast<int>(fixed.size()), fixed.data());
  return Run();
}
