// The agent's own job, end to end over real gRPC and real files: the
// schedule (1 s here) with its unchanged-state skip, metrics scraped over
// HTTP and the schedule's health; leader failover in a three-node cluster
// moving the job; a full disk in the catalog (a real 256 KiB tmpfs in a
// user and mount namespace) counting failures and flipping the schedule's
// health while older snapshots stay; kill -9 during a scheduled write; fetch
// resuming from an offset; restore by catalog id; the safety snapshot
// undoing a restore.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "archive/archive.h"
#include "base/io.h"
#include "base/testing.h"
#include "client/client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/agent_testing.h"

namespace snapshot {
namespace {

const char* g_agent = nullptr;          // with failpoints live
const char* g_shipped_agent = nullptr;  // as shipped

absl::Time In(absl::Duration d) { return absl::Now() + d; }

grpc::health::v1::HealthCheckResponse::ServingStatus Health(const std::string& address,
                                                            const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(testing::Connect(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  return s.ok() ? resp.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
}

bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout) {
  for (absl::Time until = In(timeout); absl::Now() < until;) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return cond();
}

std::vector<CatalogEntry> Scheduled(Agent* a) {
  std::vector<CatalogEntry> out;
  for (const CatalogEntry& e : a->job()->catalog()->List()) {
    if (e.origin == SnapshotOrigin::kScheduled) out.push_back(e);
  }
  return out;
}

std::vector<std::string> PartFiles(const std::string& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (absl::EndsWith(e.path().string(), ".part")) out.push_back(e.path().string());
  }
  return out;
}

TEST(SnapshotJob, ScheduleStoresSkipsUnchangedAndShowsInMetricsAndHealth) {
  testing::TempDir dir;
  AgentConfig c = testing::SingleAgentConfig(dir.path());
  c.job.interval = absl::Seconds(1);
  const int metrics_port = testing::FreePort();
  c.metrics_listen = absl::StrCat("127.0.0.1:", metrics_port);
  auto agent = Agent::Start(c);
  ASSERT_TRUE(agent.ok()) << agent.status();
  Agent* a = agent->get();
  // The first run comes at once (no earlier scheduled snapshot); then a
  // write, and the run after it stores the change.
  ASSERT_TRUE(WaitFor([&] { return Scheduled(a).size() >= 1; }, absl::Seconds(10)));
  const size_t at_start = Scheduled(a).size();
  ASSERT_TRUE(a->embedded()->Put("k", "1", In(absl::Seconds(5))).ok());
  ASSERT_TRUE(WaitFor([&] { return Scheduled(a).size() > at_start; }, absl::Seconds(10)));
  // Nothing changes for two runs: nothing new is stored. (Waiting on the
  // runs themselves, as the metrics count them, not on a guess of time.)
  const size_t before = Scheduled(a).size();
  const char* kUnchanged = "snapshot_agent_schedule_runs_total{result=\"unchanged\"}";
  const double unchanged = testing::MetricSample(testing::ScrapeMetrics(metrics_port), kUnchanged);
  ASSERT_TRUE(WaitFor([&] { return testing::MetricSample(testing::ScrapeMetrics(metrics_port), kUnchanged) >= unchanged + 2; },
                      absl::Seconds(10)));
  EXPECT_EQ(Scheduled(a).size(), before) << "an unchanged state must not be stored again";
  ASSERT_TRUE(a->embedded()->Put("k", "2", In(absl::Seconds(5))).ok());
  ASSERT_TRUE(WaitFor([&] { return Scheduled(a).size() == before + 1; }, absl::Seconds(10)));
  auto newest = Scheduled(a).front();
  EXPECT_TRUE(absl::StrContains(newest.id, "-scheduled")) << newest.id;

  // The catalog gauges follow the catalog once a run has ended (a run
  // stores its entry before it updates them, and the next run may be
  // under way): they must agree within a few intervals.
  std::string m;
  EXPECT_TRUE(WaitFor(
      [&] {
        m = testing::ScrapeMetrics(metrics_port);
        return testing::MetricSample(m, "snapshot_agent_catalog_snapshots ") ==
                   a->job()->catalog()->List().size() &&
               testing::MetricSample(m, "snapshot_agent_catalog_bytes ") == a->job()->catalog()->TotalBytes();
      },
      absl::Seconds(5)))
      << m;
  ASSERT_FALSE(m.empty());
  EXPECT_GE(testing::MetricSample(m, "snapshot_agent_schedule_runs_total{result=\"success\"}"), 2);
  EXPECT_GE(testing::MetricSample(m, "snapshot_agent_schedule_runs_total{result=\"unchanged\"}"), 1);
  EXPECT_EQ(testing::MetricSample(m, "snapshot_agent_schedule_consecutive_failures "), 0);
  EXPECT_GT(testing::MetricSample(m, "snapshot_agent_schedule_last_success_timestamp_seconds "),
            absl::ToUnixSeconds(absl::Now()) - 60);
  EXPECT_GE(testing::MetricSample(m, "snapshot_agent_operation_duration_seconds_count{operation=\"catalog_write\"}"),
            2);
  EXPECT_EQ(Health(a->address(), kScheduleHealthService),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(a->address(), ""), grpc::health::v1::HealthCheckResponse::SERVING);
  a->Shutdown(absl::Seconds(1));
}

TEST(SnapshotJob, LeaderFailoverMovesTheJobWithoutGapsOrDuplicateIndexes) {
  testing::TempDir dir;
  int leader = -1;
  auto agents = testing::StartAgentCluster(dir.path(), 3, &leader, [](AgentConfig* c) {
    c->job.interval = absl::Seconds(1);
    c->job.retention.keep_last = 1000;
  });
  ASSERT_EQ(agents.size(), 3u);
  // A writer keeps the state changing, on whichever node leads.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      for (auto& a : agents) {
        if (a->embedded() != nullptr &&
            a->embedded()->Put("w", absl::StrCat(i), In(absl::Milliseconds(500))).ok()) {
          break;
        }
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  std::vector<CatalogEntry> all;
  // Let the first leader store a few, then stop it right after one.
  ASSERT_TRUE(WaitFor([&] { return Scheduled(agents[leader].get()).size() >= 3; },
                      absl::Seconds(15)));
  const size_t n = Scheduled(agents[leader].get()).size();
  ASSERT_TRUE(WaitFor([&] { return Scheduled(agents[leader].get()).size() > n; },
                      absl::Seconds(5)));
  for (const auto& e : Scheduled(agents[leader].get())) all.push_back(e);
  const absl::Time stopped = absl::Now();
  agents[leader]->Shutdown(absl::Seconds(1));
  // The job moves: another agent stores scheduled snapshots.
  int next = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < 3; ++i) {
          if (i != leader && Scheduled(agents[i].get()).size() >= 3) next = i;
        }
        return next >= 0;
      },
      absl::Seconds(20)));
  stop = true;
  writer.join();
  for (int i = 0; i < 3; ++i) {
    if (i == leader) continue;
    for (const auto& e : Scheduled(agents[i].get())) all.push_back(e);
  }
  std::sort(all.begin(), all.end(),
            [](const CatalogEntry& x, const CatalogEntry& y) { return x.created < y.created; });
  std::set<uint64_t> indexes;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_TRUE(indexes.insert(all[i].meta.index).second)
        << "index " << all[i].meta.index << " stored twice";
    if (i > 0) {
      EXPECT_LE(all[i].created - all[i - 1].created, absl::Seconds(2))
          << "gap before " << all[i].id << " (leader stopped at "
          << absl::FormatTime(stopped) << ")";
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (i != leader) agents[i]->Shutdown(absl::Seconds(1));
  }
}

// A child agent whose catalog is a 256 KiB tmpfs of its own (user and mount
// namespaces: no privilege needed beyond what unshare(1) gets).
TEST(SnapshotJob, FullDiskCountsFailuresFlipsHealthAndKeepsOlderSnapshots) {
  testing::TempDir dir;
  const std::string catalog = dir.path() + "/catalog";
  std::filesystem::create_directories(catalog);
  const std::string listen = absl::StrCat("127.0.0.1:", testing::FreePort());
  const int metrics_port = testing::FreePort();
  std::string cmd = absl::StrCat(
      "mount -t tmpfs -o size=256k tmpfs ", catalog, " && exec ", g_agent,
      " --data-dir=", dir.path(), "/data --listen=", listen,
      " --raft-address=127.0.0.1:", testing::FreePort(), " --snapshot-dir=", catalog,
      " --schedule=1s --max-failures=2 --keep-last=2 --keep-hourly=0 --keep-daily=0",
      " --keep-weekly=0 --keep-monthly=0 --metrics-listen=127.0.0.1:", metrics_port,
      " --log-level=warning");
  testing::Daemon d;
  testing::Spawn(&d, "/usr/bin/unshare", {"--user", "--map-root-user", "--mount", "sh", "-c", cmd},
                 dir.path() + "/agent.log");
  auto client = testing::ConnectClient(listen);
  ASSERT_NE(client, nullptr) << testing::ReadFile(dir.path() + "/agent.log");
  std::mt19937_64 rng(3);
  auto noise = [&](size_t n) {
    std::string s(n, '\0');
    for (char& ch : s) ch = static_cast<char>(rng());
    return s;
  };
  ASSERT_TRUE(WaitFor([&] { return client->Put("small", noise(40 << 10)).ok(); },
                      absl::Seconds(15)));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto l = client->ListSnapshots();
        return l.ok() && l->snapshots_size() >= 1;
      },
      absl::Seconds(10)));
  // Now more state than the disk holds.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client->Put(absl::StrCat("big", i), noise(200 << 10)).ok());
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        return Health(listen, kScheduleHealthService) ==
               grpc::health::v1::HealthCheckResponse::NOT_SERVING;
      },
      absl::Seconds(15)));
  EXPECT_EQ(Health(listen, ""), grpc::health::v1::HealthCheckResponse::SERVING)
      << "the API stays up";
  const std::string m = testing::ScrapeMetrics(metrics_port);
  EXPECT_GE(testing::MetricSample(m, "snapshot_agent_schedule_consecutive_failures "), 2);
  EXPECT_GE(testing::MetricSample(m, "snapshot_agent_schedule_runs_total{result=\"failure\"}"), 2);
  auto l = client->ListSnapshots();
  ASSERT_TRUE(l.ok());
  EXPECT_GE(l->snapshots_size(), 1) << "older snapshots are kept";
  EXPECT_TRUE(PartFiles(catalog).empty()) << "a failed write leaves nothing behind";
  // Room again: the next run succeeds and the schedule is healthy again.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Delete(absl::StrCat("big", i)).ok());
  ASSERT_TRUE(client->Put("small", noise(20 << 10)).ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        return Health(listen, kScheduleHealthService) ==
               grpc::health::v1::HealthCheckResponse::SERVING;
      },
      absl::Seconds(15)));
}

TEST(SnapshotJob, KillDuringAScheduledWriteLeavesNoPartAfterRestart) {
  testing::TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string listen = absl::StrCat("127.0.0.1:", testing::FreePort());
  const std::vector<std::string> args = {
      "--data-dir=" + data, "--listen=" + listen,
      absl::StrCat("--raft-address=127.0.0.1:", testing::FreePort()), "--schedule=1s",
      "--log-level=warning"};
  {
    testing::Daemon d;
    testing::Spawn(&d, g_agent, args, dir.path() + "/agent.log",
                   {"SNAPSHOT_AGENT_FAILPOINTS=catalog-archive-written=kill"});
    EXPECT_EQ(d.WaitExit(absl::Seconds(20)), 128 + SIGKILL);
  }
  EXPECT_EQ(PartFiles(data + "/snapshots").size(), 1u) << "the kill left its .part";
  testing::Daemon again;
  testing::Spawn(&again, g_agent, {args[0], args[1], args[2], "--log-level=warning"},
                 dir.path() + "/agent.log");
  auto client = testing::ConnectClient(listen);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(WaitFor([&] { return client->ListSnapshots().ok(); }, absl::Seconds(15)));
  EXPECT_TRUE(PartFiles(data + "/snapshots").empty());
  EXPECT_EQ(client->ListSnapshots()->snapshots_size(), 0);
}

// The shipped daemon ignores SNAPSHOT_AGENT_FAILPOINTS (issue 20, 9): the
// same kill failpoint does nothing, the scheduled snapshot is stored.
TEST(SnapshotJob, TheShippedAgentIgnoresFailpoints) {
  ASSERT_NE(g_shipped_agent, nullptr);
  testing::TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string listen = absl::StrCat("127.0.0.1:", testing::FreePort());
  testing::Daemon d;
  testing::Spawn(&d, g_shipped_agent,
                 {"--data-dir=" + data, "--listen=" + listen,
                  absl::StrCat("--raft-address=127.0.0.1:", testing::FreePort()),
                  "--schedule=1s", "--log-level=warning"},
                 dir.path() + "/agent.log", {"SNAPSHOT_AGENT_FAILPOINTS=catalog-archive-written=kill"});
  auto client = testing::ConnectClient(listen);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto l = client->ListSnapshots();
        return l.ok() && l->snapshots_size() >= 1;
      },
      absl::Seconds(20)))
      << testing::ReadFile(dir.path() + "/agent.log");
  EXPECT_EQ(d.WaitExit(absl::Milliseconds(100)), -1) << "still running";
}

TEST(SnapshotJob, FetchResumesRestoreByIdAndTheSafetySnapshotUndoes) {
  testing::TempDir dir;
  AgentConfig c = testing::SingleAgentConfig(dir.path());
  auto agent = Agent::Start(c);
  ASSERT_TRUE(agent.ok()) << agent.status();
  Agent* a = agent->get();
  auto client = testing::ConnectClient(a->address());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(WaitFor([&] { return client->Put("k", "v1").ok(); }, absl::Seconds(10)));
  // 8 MiB of random bytes: more than gRPC buffers for a reader that stops.
  std::mt19937_64 rng(9);
  std::string blob(1 << 20, '\0');
  for (int i = 0; i < 8; ++i) {
    for (char& ch : blob) ch = static_cast<char>(rng());
    ASSERT_TRUE(client->Put(absl::StrCat("blob", i), blob).ok());
  }
  auto first = client->CreateSnapshot();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->origin(), "on-demand");
  ASSERT_TRUE(client->Put("k", "v2").ok());

  // A whole fetch, then one resumed from a part of it: the same bytes.
  const std::string whole = dir.path() + "/whole.snap", resumed = dir.path() + "/resumed.snap";
  ASSERT_TRUE(client->Fetch(first->id(), whole, false, false, nullptr).ok());
  const std::string bytes = testing::ReadFile(whole);
  ASSERT_EQ(bytes.size(), first->archive_size());
  std::ofstream(resumed + ".part", std::ios::binary) << bytes.substr(0, 100000);
  auto r = client->Fetch(first->id(), resumed, /*resume=*/true, false, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(testing::ReadFile(resumed) == bytes);
  // A part that is not a prefix of the snapshot is caught and removed.
  const std::string bad = dir.path() + "/bad.snap";
  std::ofstream(bad + ".part", std::ios::binary) << std::string(100000, 'x');
  auto b = client->Fetch(first->id(), bad, true, false, nullptr);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kDataLoss) << b.status();
  EXPECT_FALSE(std::filesystem::exists(bad + ".part"));
  EXPECT_FALSE(std::filesystem::exists(bad));
  {
    // An offset past the end; a snapshot in use cannot be deleted.
    auto stub = v1::SnapshotService::NewStub(testing::Connect(a->address()));
    grpc::ClientContext ctx;
    v1::FetchSnapshotRequest req;
    req.set_id(first->id());
    req.set_offset(first->archive_size() + 1);
    auto reader = stub->FetchSnapshot(&ctx, req);
    v1::FetchSnapshotResponse msg;
    while (reader->Read(&msg)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::OUT_OF_RANGE);
    grpc::ClientContext ctx2;
    req.set_offset(0);
    req.set_chunk_size(16 << 10);
    auto open = stub->FetchSnapshot(&ctx2, req);
    ASSERT_TRUE(open->Read(&msg));  // the entry: the fetch holds the snapshot
    EXPECT_EQ(client->DeleteSnapshot(first->id()).code(),
              absl::StatusCode::kFailedPrecondition);
    while (open->Read(&msg)) {
    }
    EXPECT_TRUE(open->Finish().ok());
  }

  // Restore by id; the safety snapshot holds the state before it.
  auto restored = client->RestoreStored(first->id());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*client->Get("k", false).value(), "v1");
  const std::string safety = restored->safety_snapshot_id();
  ASSERT_FALSE(safety.empty());
  auto entry = a->job()->catalog()->Get(safety);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->origin, SnapshotOrigin::kPreRestore);
  auto undo = client->RestoreStored(safety);
  ASSERT_TRUE(undo.ok()) << undo.status();
  EXPECT_EQ(*client->Get("k", false).value(), "v2");
  EXPECT_EQ(client->RestoreStored("no-such-id").status().code(), absl::StatusCode::kNotFound);
  // The fetched file is a complete archive of that first state.
  auto src = FileSource::Open(whole);
  ASSERT_TRUE(src.ok());
  auto info = ReadArchive(&*src, nullptr);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->checksum, first->checksum());
  EXPECT_TRUE(client->DeleteSnapshot(first->id()).ok());
  a->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  // argv: the agent with failpoints live, then the agent as shipped.
  if (argc > 2) snapshot::g_shipped_agent = argv[2];
  return snapshot::testing::MainWithAgentPath(argc, argv, &snapshot::g_agent);
}
