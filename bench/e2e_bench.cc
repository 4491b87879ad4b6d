// e2e_bench: the agent end to end — a real snapshot-agent process and the
// real client library over loopback — beside gzip, pigz and gzip -d on the
// same bytes in the same run.
//
//   bazel run -c opt //bench:e2e_bench -- [--size_mib=256] [--value_bytes=65536] [--nodes=3]
//
// The state is a key-value state of the embedded engine (values of 64 KiB by
// default, --value_bytes=N otherwise, e.g. 32 for tiny keys, or spread: 100 B
// to 16 KiB, mostly ~1 KiB, as small records are; half random bytes and half
// repetitive text), loaded into the agent by a
// Restore (which is measured). Then Take at every level and in fast mode,
// Verify over gRPC and offline, and Restore into a cluster of --nodes agents.
// Figures are MB/s of state bytes (1 MB = 10^6 bytes), and the agent's
// resident memory (VmRSS now, VmHWM peak).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "archive/archive.h"
#include "bench/timing.h"
#include "archive/parallel_gzip.h"
#include "base/testing.h"
#include "client/client.h"
#include "core/limits.h"
#include "raft/testing/kv_state_source.h"
#include "tests/agent_testing.h"

namespace snapshot {
namespace {

using bench::Clock;
using bench::Die;
using bench::Median;
using bench::Seconds;

double TimeCommand(const std::string& cmd) {
  auto t0 = Clock::now();
  int rc = system(cmd.c_str());
  return rc == 0 ? Seconds(t0) : -1;
}

// The median of 3 runs of a command: the baselines the target rows are
// divided by are as robust as those rows (medians of 3) on a shared machine.
double TimeCommand3(const std::string& cmd) {
  std::vector<double> t;
  for (int i = 0; i < 3; ++i) t.push_back(TimeCommand(cmd));
  return Median(&t);
}

// VmRSS and VmHWM of a process, in MiB.
std::pair<double, double> Memory(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  double rss = 0, hwm = 0;
  while (std::getline(in, line)) {
    double kb = 0;
    if (absl::StartsWith(line, "VmRSS:")) {
      sscanf(line.c_str() + 6, "%lf", &kb);
      rss = kb / 1024;
    } else if (absl::StartsWith(line, "VmHWM:")) {
      sscanf(line.c_str() + 6, "%lf", &kb);
      hwm = kb / 1024;
    }
  }
  return {rss, hwm};
}

// Memory once the agent is idle again (a restore's log compaction ends
// after the call returns): VmRSS stable for a second, at most 20 s.
std::pair<double, double> Settled(pid_t pid) {
  auto last = Memory(pid);
  for (int i = 0; i < 20; ++i) {
    absl::SleepFor(absl::Seconds(1));
    auto now = Memory(pid);
    if (std::abs(now.first - last.first) < 2) return now;
    last = now;
  }
  return last;
}

uint64_t FileSize(const std::string& path) {
  auto src = FileSource::Open(path);
  return src.ok() ? src->size() : 0;
}

void Row(const std::string& name, double seconds, uint64_t bytes,
         const std::string& extra = "") {
  if (seconds < 0) {
    absl::PrintF("  %-50s %9s  %s\n", name, "n/a", extra);
  } else {
    absl::PrintF("  %-50s %9.1f  %s\n", name, bytes / seconds / 1e6, extra);
  }
}

struct Agents {
  std::vector<std::unique_ptr<testing::Daemon>> daemons;
  std::vector<std::string> addresses;
  std::vector<std::vector<std::string>> flags;  // each agent's
};

// Starts n agents (one cluster) with their data under `dir`, each with the
// flags `extra` as well.
Agents StartAgents(const std::string& agent, const std::string& dir, int n,
                   uint64_t max_state, const std::vector<std::string>& extra = {}) {
  Agents a;
  system(absl::StrCat("mkdir -p ", dir).c_str());
  std::vector<std::string> peers;
  std::vector<int> raft(n);
  for (int i = 0; i < n; ++i) {
    raft[i] = testing::FreePort();
    a.addresses.push_back(absl::StrCat("127.0.0.1:", testing::FreePort()));
    peers.push_back(absl::StrCat(i + 1, "=127.0.0.1:", raft[i], "@", a.addresses[i]));
  }
  for (int i = 0; i < n; ++i) {
    auto d = std::make_unique<testing::Daemon>();
    std::vector<std::string> flags = {absl::StrCat("--data-dir=", dir, "/agent", i + 1),
                                      "--listen=" + a.addresses[i],
                                      absl::StrCat("--raft-id=", i + 1),
                                      absl::StrCat("--raft-address=127.0.0.1:", raft[i]),
                                      "--peers=" + absl::StrJoin(peers, ","),
                                      absl::StrCat("--max-state-bytes=", max_state),
                                      "--log-level=warning"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    testing::Spawn(d.get(), agent, flags, absl::StrCat(dir, "/agent", i + 1, ".log"));
    a.daemons.push_back(std::move(d));
    a.flags.push_back(std::move(flags));
  }
  return a;
}

// The client of the leader (waits for one).
std::unique_ptr<SnapshotClient> Leader(const Agents& a) {
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until;) {
    for (const std::string& addr : a.addresses) {
      ClientOptions o;
      o.address = addr;
      o.connect_attempts = 1;
      auto c = SnapshotClient::Connect(o);
      if (!c.ok()) continue;
      auto st = (*c)->Status();
      if (st.ok() && st->role() == "leader") return std::move(*c);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  Die("no leader", absl::DeadlineExceededError("30 s"));
}

int Main(int argc, char** argv) {
  uint64_t size_mib = 256;
  uint64_t value_bytes = 64 << 10;  // 64 KiB; small records: --value_bytes=1024
  int nodes = 3;
  std::string agent;
  bool new_agent = true;
  std::string dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--size_mib=")) {
      (void)absl::SimpleAtoi(a, &size_mib);
    } else if (absl::ConsumePrefix(&a, "--value_bytes=")) {
      if (a == "spread") {
        value_bytes = testing::KvStateSource::kSpread;
      } else if (!absl::SimpleAtoi(a, &value_bytes) || value_bytes < 2 ||
                 value_bytes > (1 << 20)) {
        std::cerr << "e2e_bench: --value_bytes must be 2 to 1048576, or spread\n";
        return 2;
      }
    } else if (absl::ConsumePrefix(&a, "--nodes=")) {
      (void)absl::SimpleAtoi(a, &nodes);
    } else if (absl::ConsumePrefix(&a, "--agent=")) {
      agent = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--dir=")) {
      dir = std::string(a);
    } else if (a == "--old-agent") {  // before fast mode and the safety snapshot
      new_agent = false;
    } else {
      std::cerr << "usage: e2e_bench --agent=PATH [--size_mib=N] [--value_bytes=N] [--nodes=N] "
                   "[--dir=DIR] [--old-agent]\n";
      return 2;
    }
  }
  const std::string work = absl::StrFormat("%s/e2e_bench.%d", dir, getpid());
  system(absl::StrCat("mkdir -p ", work).c_str());
  const std::string state = work + "/state.bin", archive = work + "/load.snap";
  // Room for the state, within the embedded engine's ceiling (core/limits.h).
  const uint64_t max_state = std::min<uint64_t>((size_mib + 64) << 20, kEmbeddedMaxStateBytes);
  if ((size_mib << 20) + (1 << 20) > max_state) {
    std::cerr << "e2e_bench: --size_mib=" << size_mib << " is over the embedded engine's limit of "
              << kEmbeddedMaxStateBytes << " bytes of state (core/limits.h)\n";
    return 2;
  }

  // The state, and the archive that loads it (written as the agent's Take
  // writes them by default).
  testing::KvStateSource gen(testing::KvStateSource::EntriesFor(size_mib << 20, value_bytes),
                             value_bytes);
  const uint64_t bytes = gen.size();
  {
    auto out = FileSink::Create(state, 0600, false);
    if (!out.ok()) Die("state", out.status());
    std::string buf(1 << 20, '\0');
    for (;;) {
      size_t n = *gen.Read(&buf[0], buf.size());
      if (n == 0) break;
      (void)out->Write(absl::string_view(buf.data(), n));
    }
    (void)out->SyncAndClose();
    SnapshotMeta meta;
    meta.id = "1-1-0";
    meta.index = 1;
    meta.term = 1;
    meta.engine = kEngineEmbedded;
    meta.size = bytes;
    auto src = FileSource::Open(state);
    auto arch = FileSink::Create(archive, 0600, false);
    WriterOptions wo;  // as the agent writes archives by default
    wo.compressor = ParallelGzipCompressor(6, 2);
    auto info = WriteArchive(meta, &*src, &*arch, wo);
    if (!info.ok()) Die("archive", info.status());
    (void)arch->SyncAndClose();
  }
  TimeCommand(absl::StrCat("cat ", state, " ", archive, " > /dev/null"));
  absl::PrintF("e2e_bench: %.1f MiB of key-value state (values of %s, half random), %d cores\n",
               bytes / 1048576.0,
               value_bytes == testing::KvStateSource::kSpread
                   ? std::string("100 B to 16 KiB, mostly ~1 KiB")
                   : absl::StrCat(value_bytes, " bytes"),
               sysconf(_SC_NPROCESSORS_ONLN));
  absl::PrintF("  %-50s %9s\n", "", "MB/s");

  // Baselines on the same bytes.
  const double gzip6 =
      TimeCommand3(absl::StrCat("gzip -6 -c ", state, " > ", work, "/state.gz"));
  const uint64_t gzip6_size = FileSize(work + "/state.gz");
  Row("gzip -6 (median of 3)", gzip6, bytes,
      absl::StrFormat("%.1f MiB", gzip6_size / 1048576.0));
  Row("pigz -p 2 -6", TimeCommand(absl::StrCat("pigz -p 2 -6 -c ", state, " > /dev/null")), bytes);
  const double gunzip = TimeCommand3(absl::StrCat("gzip -dc ", work, "/state.gz > /dev/null"));
  Row("gzip -d (median of 3)", gunzip, bytes);

  // Nomad's restore (the reference) takes no safety snapshot, so neither do
  // the agents of the restore rows, except the one row that measures it.
  std::vector<std::string> no_safety;
  if (new_agent) no_safety.push_back("--no-safety-snapshot");

  // One agent: load the state by restoring it.
  {
    Agents one = StartAgents(agent, work + "/one", 1, max_state, no_safety);
    auto client = Leader(one);
    const pid_t pid = one.daemons[0]->pid;
    auto t0 = Clock::now();
    auto r = client->Restore(archive, nullptr);
    if (!r.ok()) Die("restore", r.status());
    const double restore1 = Seconds(t0);
    auto mem = Settled(pid);
    Row("Restore, one node", restore1, bytes,
        absl::StrFormat("%.2fx gzip -d; agent RSS %.0f MiB, peak %.0f", gunzip / restore1,
                        mem.first, mem.second));

    struct Mode {
      std::string name;
      std::optional<int> level;
      bool fast;
    };
    std::vector<Mode> modes;
    for (int level = 0; level <= 9; ++level) {
      if (level == 6) {
        modes.push_back({"Take, level 6 (default; median of 3)", std::nullopt, false});
      } else {
        modes.push_back({absl::StrCat("Take, level ", level), level, false});
      }
    }
    if (new_agent) modes.push_back({"Take, fast (median of 3)", std::nullopt, true});
    std::string saved_default;
    for (size_t i = 0; i < modes.size(); ++i) {
      const Mode& m = modes[i];
      const std::string path = absl::StrCat(work, "/take-", i, ".snap");
      SaveOptions so;
      so.compression_level = m.level;
      so.fast = m.fast;
      // The default level and fast mode, the rows with targets: median of 3.
      const int runs = (!m.level || m.fast) ? 3 : 1;
      std::vector<double> took;
      absl::StatusOr<SaveResult> saved;
      for (int r = 0; r < runs; ++r) {
        unlink(path.c_str());
        auto t1 = Clock::now();
        saved = client->Save(path, so, nullptr);
        if (!saved.ok()) break;
        took.push_back(Seconds(t1));
      }
      if (!saved.ok()) {
        Row(m.name, -1, bytes, std::string(saved.status().message()));
        continue;
      }
      const double s = Median(&took);
      if (!m.level && !m.fast) {
        saved_default = path;
      } else {
        unlink(path.c_str());  // its page cache is reused by the next file
      }
      Row(m.name, s, bytes,
          absl::StrFormat("%.2fx gzip -6; %.1f MiB, %+.1f%% vs gzip -6", gzip6 / s,
                          saved->archive_size / 1048576.0,
                          100.0 * (double(saved->archive_size) - gzip6_size) / gzip6_size));
    }
    auto t2 = Clock::now();
    auto v = client->Verify(saved_default, nullptr);
    if (!v.ok()) Die("verify", v.status());
    const double verify = Seconds(t2);
    Row("Verify over gRPC", verify, bytes, absl::StrFormat("%.2fx gzip -d", gunzip / verify));
    auto src = FileSource::Open(saved_default);
    auto t3 = Clock::now();
    auto offline = ReadArchive(&*src, nullptr);
    if (!offline.ok()) Die("offline verify", offline.status());
    const double off = Seconds(t3);
    Row("Verify offline (inspect)", off, bytes, absl::StrFormat("%.2fx gzip -d", gunzip / off));
    mem = Memory(pid);
    absl::PrintF("  agent after the takes: RSS %.0f MiB, peak %.0f MiB\n", mem.first, mem.second);
    // Restores over a loaded state, and memory across them.
    std::vector<double> times;
    for (int i = 0; i < 3; ++i) {
      Settled(pid);  // the previous restore's log compaction is done
      auto t4 = Clock::now();
      auto again = client->Restore(archive, nullptr);
      if (!again.ok()) Die("restore again", again.status());
      times.push_back(Seconds(t4));
    }
    const double replacing = Median(&times);
    Row("Restore, one node, replacing the state (median of 3)", replacing, bytes,
        absl::StrFormat("%.2fx gzip -d", gunzip / replacing));
    mem = Settled(pid);
    absl::PrintF("  agent after 4 restores, settled: RSS %.0f MiB, peak %.0f MiB\n", mem.first,
                 mem.second);
    if (new_agent) {
      // The same data, the agent's default: a safety snapshot (Take at the
      // default level, written, read back and verified) before the restore.
      one.daemons[0] = std::make_unique<testing::Daemon>();  // kills the old one
      std::vector<std::string> flags = one.flags[0];
      flags.erase(std::remove(flags.begin(), flags.end(), "--no-safety-snapshot"), flags.end());
      testing::Spawn(one.daemons[0].get(), agent, flags, work + "/one/agent1.log");
      client = Leader(one);
      auto t5 = Clock::now();
      auto safe = client->Restore(archive, nullptr);
      if (!safe.ok()) Die("restore with a safety snapshot", safe.status());
      const double s = Seconds(t5);
      Row("Restore, one node, replacing, with the safety snapshot", s, bytes,
          absl::StrFormat("%.2fx gzip -d", gunzip / s));
    }
  }

  if (nodes > 1) {
    // As the one-node rows: the first restore, then the median of 3
    // replacing it (each once the previous one's log compaction is done on
    // every node). The leader is looked up before every restore: on a
    // machine this loaded leadership may move between restores (a restore
    // sent to a follower is refused); such a move is reported.
    Agents cluster = StartAgents(agent, work + "/cluster", nodes, max_state, no_safety);
    std::vector<double> times;
    uint64_t term = 0;
    for (int i = 0; i < 4; ++i) {
      for (const auto& d : cluster.daemons) Settled(d->pid);
      auto client = Leader(cluster);
      auto st = client->Status();
      if (st.ok()) {
        if (term != 0 && st->term() != term) {
          absl::PrintF("  (leadership moved before restore %d: term %d -> %d)\n", i + 1,
                       term, st->term());
        }
        term = st->term();
      }
      auto t0 = Clock::now();
      auto r = client->Restore(archive, nullptr);
      if (!r.ok()) Die("cluster restore", r.status());
      times.push_back(Seconds(t0));
      if (i == 0) {
        Row(absl::StrFormat("Restore, %d nodes (first)", nodes), times[0], bytes,
            absl::StrFormat("%.2fx gzip -d", gunzip / times[0]));
        times.clear();
      }
    }
    const double s = Median(&times);
    Row(absl::StrFormat("Restore, %d nodes, replacing the state (median of 3)", nodes), s, bytes,
        absl::StrFormat("%.2fx gzip -d", gunzip / s));
  }
  system(absl::StrCat("rm -rf ", work).c_str());
  return 0;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) { return snapshot::Main(argc, argv); }
