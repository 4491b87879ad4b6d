// A real agent process against a real S3 server (Ceph RGW on loopback): a
// 300 MiB archive uploaded in parts with the agent's memory bounded by a few
// parts, and a kill -9 in the middle of that upload: no object appears, the
// multipart upload is aborted at the next start, and the snapshot is uploaded
// again, byte for byte.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "archive/archive.h"
#include "archive/parallel_gzip.h"
#include "base/sha256.h"
#include "base/testing.h"
#include "store/testing/rgw_server.h"
#include "tests/agent_testing.h"

namespace snapshot {
namespace {

const char* g_agent = nullptr;
constexpr double kMiB = 1 << 20;

// `size` pseudo-random bytes, made as they are read.
class RandomSource : public ByteSource {
 public:
  explicit RandomSource(uint64_t size) : left_(size) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    n = std::min<uint64_t>(n, left_) & ~size_t{7};
    if (n == 0 && left_ > 0) n = left_;  // the tail (the size is a multiple of 8 here)
    for (size_t i = 0; i + 8 <= n; i += 8) {
      const uint64_t v = rng_();
      memcpy(buf + i, &v, 8);
    }
    left_ -= n;
    return n;
  }

 private:
  uint64_t left_;
  std::mt19937_64 rng_{7};
};


TEST(RemoteProcess, ALargeUploadKilledMidwayIsAbortedAndDoneAgainInBoundedMemory) {
  testing::TempDir dir;
  testing::RgwServer* rgw = testing::SharedRgw();
  auto s3 = rgw->NewClient();
  const std::string data = dir.path() + "/data";
  const std::string id = "20261206T120000.000Z-i1-on-demand";
  const std::string archive = data + "/snapshots/" + id + ".snap";
  std::filesystem::create_directories(data + "/snapshots");
  chmod(data.c_str(), 0700);
  chmod((data + "/snapshots").c_str(), 0700);
  // A stored snapshot of 300 MiB that gzip cannot shrink, as if taken
  // earlier: the catalog rebuilds its sidecar at start.
  ArchiveInfo written;
  {
    SnapshotMeta meta;
    meta.id = "1-1-0";
    meta.index = 1;
    meta.term = 1;
    meta.engine = kEngineEmbedded;
    meta.size = 300ull << 20;
    RandomSource state(meta.size);
    auto out = FileSink::Create(archive, 0600, true);
    ASSERT_TRUE(out.ok()) << out.status();
    WriterOptions wo;
    wo.compressor = ParallelGzipCompressor(Compression::Fast(), 2);
    auto info = WriteArchive(meta, &state, &*out, wo);
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_TRUE(out->SyncAndClose().ok());
    written = *info;
  }
  ASSERT_GE(written.archive_size, 300ull << 20);

  const std::string listen = absl::StrCat("127.0.0.1:", testing::FreePort());
  const std::vector<std::string> args = {
      "--data-dir=" + data, "--listen=" + listen,
      absl::StrCat("--raft-address=127.0.0.1:", testing::FreePort()),
      absl::StrCat("--remote=s3://", rgw->bucket(), "/big"), "--remote-cluster=prod",
      "--s3-endpoint=" + rgw->endpoint(), "--remote-interval=1s"};
  const std::string log = dir.path() + "/agent.log";
  const std::string key = "big/prod/" + id + ".snap";

  // The first agent is killed while its upload is under way.
  {
    testing::Daemon a;
    testing::Spawn(&a, g_agent, args, log, rgw->Env());
    bool begun = false;
    for (int i = 0; i < 3000 && !begun; ++i) {
      auto uploads = s3->ListMultipartUploads("big/");
      begun = uploads.ok() && !uploads->empty();
      if (!begun) absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_TRUE(begun) << testing::ReadFile(log);
    absl::SleepFor(absl::Milliseconds(300));  // a few parts in
    kill(a.pid, SIGKILL);
    a.WaitExit(absl::Seconds(10));
  }
  auto objects = s3->ListObjects("big/");
  ASSERT_TRUE(objects.ok());
  EXPECT_TRUE(objects->empty()) << "a killed upload leaves no object";
  ASSERT_EQ(testing::ReadFile(log).find("snapshot uploaded"), std::string::npos)
      << "the upload ended before the kill: nothing was tested";

  // The next start aborts it and uploads the snapshot again.
  testing::Daemon b;
  testing::Spawn(&b, g_agent, args, log, rgw->Env());
  EXPECT_TRUE(testing::WaitForLog(log, "aborted an upload left by an earlier run",
                                  absl::Seconds(30)));
  ASSERT_TRUE(testing::WaitForLog(log, "snapshot uploaded", absl::Seconds(300)))
      << testing::ReadFile(log);
  const double peak = testing::ProcStatusMiB(b.pid, "VmHWM");
  auto uploads = s3->ListMultipartUploads("big/");
  ASSERT_TRUE(uploads.ok());
  EXPECT_TRUE(uploads->empty()) << "no upload left behind";
  auto head = s3->HeadObject(key);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, written.archive_size);
  // Byte for byte: the object's SHA-256 is the archive's checksum.
  DiscardSink discard;
  HashingSink sink(&discard);
  ASSERT_TRUE(s3->GetObject(key, 0, &sink, 1ull << 32).ok());
  EXPECT_EQ(ChecksumString(sink.Finish()), written.checksum);
  // A few 8 MiB parts in memory, never the archive: the agent's whole peak
  // (gRPC, Raft, the upload) stays far below the archive's size.
  EXPECT_LE(peak, 160) << "peak RSS of the agent that uploaded " << written.archive_size / kMiB
                       << " MiB";
  std::cout << "archive " << written.archive_size / kMiB << " MiB; peak RSS of the uploading agent "
            << peak << " MiB\n";
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::AddGlobalTestEnvironment(new snapshot::testing::RgwEnvironment());
  return snapshot::testing::MainWithAgentPath(argc, argv, &snapshot::g_agent);
}
