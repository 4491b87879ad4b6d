// raft_snapshot_bench: how long taking a snapshot stalls the Raft loop.
//
//   bazel run -c opt //bench:raft_snapshot_bench -- [--keys=1000000]
//
// A single embedded node is loaded with N keys (one restore), then a probe
// thread measures the loop's round-trip latency (a Status() call) while the
// main thread takes a snapshot and serializes it. Printed beside it, from the
// same run: the probe latency on an idle loop, and the time a
// serialize-on-the-loop design would have blocked the loop for (the time to
// serialize the same state).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "raft/embedded_node.h"
#include "raft/kv_state.h"
#include "raft/testing/cluster.h"

namespace snapshot {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct Probe {
  std::vector<double> ms;
  double Max() const { return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()); }
  double P50() {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }
};

// Calls Status() back to back until `stop`, recording each round trip.
Probe RunProbe(EmbeddedNode* node, std::atomic<bool>* stop) {
  Probe p;
  while (!*stop) {
    auto t0 = Clock::now();
    if (!node->Status(absl::Now() + absl::Seconds(10)).ok()) break;
    p.ms.push_back(Ms(Clock::now() - t0));
  }
  return p;
}

uint64_t Drain(ByteSource* src) {
  std::string buf(1 << 20, '\0');
  uint64_t total = 0;
  for (;;) {
    size_t n = *src->Read(&buf[0], buf.size());
    if (n == 0) return total;
    total += n;
  }
}

int Main(int argc, char** argv) {
  int keys = 1000000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--keys=", 0) == 0) {
      keys = std::stoi(a.substr(7));
    } else {
      std::cerr << "usage: raft_snapshot_bench [--keys=N]\n";
      return 2;
    }
  }
  testing::TempDir dir;
  EmbeddedNodeConfig c;
  c.id = 1;
  c.raft_address = absl::StrFormat("127.0.0.1:%d", testing::FreePort());
  c.data_dir = dir.path() + "/data";
  c.snapshot_threshold = 1 << 30;  // keep the engine's own snapshots out
  auto node_or = EmbeddedNode::Start(c);
  if (!node_or.ok()) {
    std::cerr << node_or.status() << "\n";
    return 1;
  }
  EmbeddedNode* node = node_or->get();
  if (!node->WaitForLeader(absl::Now() + absl::Seconds(10)).ok()) return 1;

  // Load N keys through one restore.
  kv::KvState state;
  std::string value(32, 'v');
  for (int i = 0; i < keys; ++i) state.Put(absl::StrFormat("key/%08d", i), value);
  auto t0 = Clock::now();
  kv::StateView view = state.View();
  double capture_ms = Ms(Clock::now() - t0);
  auto src = view.NewSource();
  t0 = Clock::now();
  std::string bytes(view.SerializedSize(), '\0');
  for (size_t filled = 0; filled < bytes.size();) {
    filled += *src->Read(&bytes[filled], bytes.size() - filled);
  }
  double serialize_ms = Ms(Clock::now() - t0);
  SnapshotMeta meta;
  meta.size = bytes.size();
  auto shared = std::make_shared<std::string>(std::move(bytes));
  auto restored = node->Restore(
      meta,
      [shared]() -> absl::StatusOr<std::unique_ptr<ByteSource>> {
        return std::unique_ptr<ByteSource>(new StringSource(*shared));
      },
      absl::Now() + absl::Minutes(5));
  if (!restored.ok()) {
    std::cerr << restored.status() << "\n";
    return 1;
  }

  // Baseline: an idle loop.
  std::atomic<bool> stop{false};
  Probe idle;
  std::thread idle_probe([&] { idle = RunProbe(node, &stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  idle_probe.join();

  // A snapshot, captured and serialized while the probe runs.
  stop = false;
  Probe busy;
  std::thread busy_probe([&] { busy = RunProbe(node, &stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  t0 = Clock::now();
  auto snap = node->Snapshot({}, absl::Now() + absl::Seconds(30));
  double snapshot_call_ms = Ms(Clock::now() - t0);
  if (!snap.ok()) {
    std::cerr << snap.status() << "\n";
    return 1;
  }
  t0 = Clock::now();
  uint64_t n = Drain(snap->state.get());
  double drain_ms = Ms(Clock::now() - t0);
  stop = true;
  busy_probe.join();

  absl::PrintF("raft_snapshot_bench: %d keys, state %.1f MiB\n", keys,
               n / 1048576.0);
  absl::PrintF("  %-52s %10.3f ms\n", "view capture (what the loop does)", capture_ms);
  absl::PrintF("  %-52s %10.3f ms\n", "Snapshot() call (barrier round trip + capture)",
               snapshot_call_ms);
  absl::PrintF("  %-52s %10.1f ms (%.0f MB/s)\n",
               "serializing the view off the loop", drain_ms, n / drain_ms / 1e3);
  absl::PrintF("  %-52s %10.3f ms max, %.3f ms p50 (%d probes)\n",
               "loop round trip while snapshotting", busy.Max(), busy.P50(),
               static_cast<int>(busy.ms.size()));
  absl::PrintF("  %-52s %10.3f ms max, %.3f ms p50 (%d probes)\n",
               "baseline: loop round trip, idle", idle.Max(), idle.P50(),
               static_cast<int>(idle.ms.size()));
  absl::PrintF("  %-52s %10.1f ms\n",
               "baseline: pause if serialized on the loop", serialize_ms);
  return 0;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) { return snapshot::Main(argc, argv); }
