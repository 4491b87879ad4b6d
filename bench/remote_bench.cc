// remote_bench: off-host copies against a real S3 server (Ceph RGW on
// loopback, tools/rgw.sh) beside Debian's `aws s3 cp` of the same file to
// the same server in the same run.
//
//   bazel run -c opt //bench:remote_bench -- [--size_mib=256] [--rounds=3]
//
// Rows (MB/s of object bytes, 1 MB = 10^6 bytes; medians of --rounds,
// interleaved with the baseline):
//   - aws s3 cp of an archive file (awscli's defaults: 8 MiB parts, 10 in
//     flight, an MD5 per part);
//   - the agent's uploader (store/remote_store: 8 MiB+ parts, 4 in flight,
//     a SHA-256 per part checked by the server), plain and age-encrypted;
//   - a scheduled snapshot end to end in a real agent process (take,
//     verify, store; then encrypt and upload), with the agent's peak RSS.
// The archives are the embedded engine's key-value state (values of 4 KiB,
// half random bytes: Kubernetes-object-sized records) written at gzip -6.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "age/age.h"
#include "archive/archive.h"
#include "bench/timing.h"
#include "archive/parallel_gzip.h"
#include "base/testing.h"
#include "client/client.h"
#include "raft/testing/kv_state_source.h"
#include "store/remote_store.h"
#include "store/testing/rgw_server.h"
#include "tests/agent_testing.h"

ABSL_FLAG(int, size_mib, 256, "archive size to aim for, MiB");
ABSL_FLAG(int, rounds, 3, "rounds of each row (median)");
ABSL_FLAG(std::string, agent, "", "the snapshot-agent binary (end-to-end row)");
ABSL_FLAG(std::string, dir, "/tmp", "where to write the archive");

namespace snapshot {
namespace {

using bench::Clock;
using bench::Die;
using bench::Median;
using bench::Seconds;

// Copies a file into a sink.
absl::Status Copy(const std::string& path, ByteSink* sink) {
  auto src = FileSource::Open(path);
  if (!src.ok()) return src.status();
  return CopyAll(&*src, sink).status();
}

void Row(const std::string& name, double bytes, std::vector<double> secs, double baseline_mbs,
         const std::string& extra = "") {
  const double mbs = bytes / 1e6 / Median(&secs);
  absl::PrintF("%-52s %8.1f MB/s", name, mbs);
  if (baseline_mbs > 0) absl::PrintF("  %5.2fx aws s3 cp", mbs / baseline_mbs);
  absl::PrintF("%s\n", extra);
}

int Main() {
  const int rounds = absl::GetFlag(FLAGS_rounds);
  auto rgw = testing::RgwServer::Start();
  if (!rgw.ok()) Die("starting RGW", rgw.status());
  testing::RgwServer& s3 = **rgw;
  for (const std::string& e : s3.Env()) putenv(strdup(e.c_str()));

  // The archive: about --size_mib of gzip -6 over records.
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const std::string archive = dir + "/remote_bench.snap";
  const uint64_t state_bytes =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_size_mib) * 2.0 * (1 << 20));
  testing::KvStateSource gen(testing::KvStateSource::EntriesFor(state_bytes, 4096), 4096);
  SnapshotMeta meta;
  meta.id = "1-1-0";
  meta.index = 1;
  meta.term = 1;
  meta.engine = kEngineEmbedded;
  meta.size = gen.size();
  {
    auto out = FileSink::Create(archive, 0600, false);
    if (!out.ok()) Die("archive", out.status());
    WriterOptions wo;
    wo.compressor = ParallelGzipCompressor(6, 2);
    auto info = WriteArchive(meta, &gen, &*out, wo);
    if (!info.ok()) Die("archive", info.status());
    if (absl::Status s = out->SyncAndClose(); !s.ok()) Die("archive", s);
  }
  struct stat st;
  stat(archive.c_str(), &st);
  const double bytes = static_cast<double>(st.st_size);
  absl::PrintF("archive: %.1f MiB (state %.1f MiB, 4 KiB records); server: Ceph RGW %s\n",
               bytes / (1 << 20), gen.size() / double(1 << 20), s3.endpoint());

  auto key = age::X25519Identity::Generate();
  if (!key.ok()) Die("age key", key.status());
  RemoteStore store(s3.NewClient(), "bench", PartSizeFor(1ull << 30), 4);
  std::vector<double> aws, plain, encrypted;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    const std::string cmd = absl::StrCat("/usr/bin/aws --endpoint-url ", s3.endpoint(),
                                         " s3 cp --only-show-errors ", archive, " s3://",
                                         s3.bucket(), "/aws/r", r, ".snap");
    if (system(cmd.c_str()) != 0) Die("aws s3 cp", absl::InternalError(cmd));
    aws.push_back(Seconds(t0));
    for (bool enc : {false, true}) {
      t0 = Clock::now();
      auto up = store.Upload(
          enc ? "age" : "plain", absl::StrCat("20261206T00000", r, ".000Z-i1-scheduled"), enc,
          [&](ByteSink* sink) -> absl::Status {
            if (!enc) return Copy(archive, sink);
            auto e = age::Encryptor::Create({key->recipient()}, sink);
            if (!e.ok()) return e.status();
            if (absl::Status s = Copy(archive, e->get()); !s.ok()) return s;
            return (*e)->Finish();
          },
          [](const RemoteUpload&) { return std::string("{}"); });
      if (!up.ok()) Die("upload", up.status());
      (enc ? encrypted : plain).push_back(Seconds(t0));
    }
  }
  const double base = bytes / 1e6 / Median(&aws);
  Row("aws s3 cp (baseline)", bytes, aws, 0);
  Row("agent upload (4 parts in flight)", bytes, plain, base);
  Row("agent upload, age-encrypted", bytes, encrypted, base);

  // A snapshot end to end in a real agent: restore the state into it, then
  // CreateSnapshot (take, verify, store) and the upload that follows.
  const std::string agent = absl::GetFlag(FLAGS_agent);
  if (!agent.empty()) {
    const std::string data = dir + "/remote_bench_agent";
    (void)system(absl::StrCat("rm -rf ", data).c_str());
    const std::string recipients = dir + "/remote_bench.pub";
    std::ofstream(recipients) << key->recipient().Encode() << "\n";
    const std::string listen = absl::StrCat("127.0.0.1:", testing::FreePort());
    const std::string log = dir + "/remote_bench_agent.log";
    testing::Daemon d;
    testing::Spawn(&d, agent,
                   {"--data-dir=" + data, "--listen=" + listen,
                    absl::StrCat("--raft-address=127.0.0.1:", testing::FreePort()),
                    absl::StrCat("--remote=s3://", s3.bucket(), "/e2e"), "--remote-cluster=bench",
                    "--s3-endpoint=" + s3.endpoint(), "--encrypt-to=" + recipients,
                    "--remote-interval=1h", "--log-level=info"},
                   log);
    auto client = testing::ConnectClient(listen);
    if (!testing::WaitForHealth(testing::Connect(listen),
                                grpc::health::v1::HealthCheckResponse::SERVING,
                                absl::Seconds(30))) {
      Die("agent", absl::UnavailableError("did not start; see " + log));
    }
    auto restored = client->Restore(archive, nullptr);
    if (!restored.ok()) Die("restore", restored.status());
    std::vector<double> e2e;
    for (int r = 0; r < rounds; ++r) {
      auto uploads = [&] {
        const std::string text = testing::ReadFile(log);
        size_t n = 0;
        for (size_t at = 0; (at = text.find("snapshot uploaded", at)) != std::string::npos; ++at) ++n;
        return n;
      };
      const size_t before = uploads();
      auto t0 = Clock::now();
      auto e = client->CreateSnapshot();
      if (!e.ok()) Die("create", e.status());
      if (!testing::WaitForChange(log, [&] { return uploads() > before; }, absl::Minutes(10))) {
        Die("upload", absl::DeadlineExceededError("no upload in 10 minutes; see " + log));
      }
      e2e.push_back(Seconds(t0));
    }
    Row("snapshot end to end: take+verify+store+age+upload", gen.size(), e2e, 0,
        absl::StrFormat("  (of state; agent peak RSS %.0f MiB, state %.0f MiB)", testing::ProcStatusMiB(d.pid, "VmHWM"),
                        gen.size() / double(1 << 20)));
  }
  unlink(archive.c_str());
  return 0;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return snapshot::Main();
}
