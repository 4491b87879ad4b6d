// archive_bench: write and verify throughput of the archive codec, beside
// gzip and pigz run on the same bytes in the same run, and peak RSS.
//
//   bazel run -c opt //bench:archive_bench -- [--size_mib=256] [--dir=/tmp]
//
// The state is half-compressible data (SyntheticSource) written to a file
// first, so that every contender reads the same bytes from the page cache.
// Figures are MB/s of state bytes (1 MB = 10^6 bytes).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/str_format.h"
#include "archive/archive.h"
#include "archive/parallel_gzip.h"
#include "archive/synthetic_source.h"

namespace snapshot {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

[[noreturn]] void Die(const absl::Status& s) {
  std::cerr << "archive_bench: " << s << "\n";
  exit(1);
}

// Runs a shell command and returns its wall time, or -1 when it failed or
// the tool is missing.
double TimeCommand(const std::string& cmd) {
  auto t0 = Clock::now();
  int rc = system(cmd.c_str());
  double s = Seconds(t0);
  return rc == 0 ? s : -1;
}

struct Row {
  std::string name;
  double seconds;
};

void Print(const Row& r, uint64_t bytes) {
  if (r.seconds < 0) {
    absl::PrintF("  %-40s %10s\n", r.name, "n/a");
  } else {
    absl::PrintF("  %-40s %10.1f\n", r.name, bytes / r.seconds / 1e6);
  }
}

int Main(int argc, char** argv) {
  uint64_t size_mib = 256;
  std::string dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--size_mib=", 0) == 0) {
      size_mib = std::stoull(a.substr(11));
    } else if (a.rfind("--dir=", 0) == 0) {
      dir = a.substr(6);
    } else {
      std::cerr << "usage: archive_bench [--size_mib=N] [--dir=DIR]\n";
      return 2;
    }
  }
  const uint64_t size = size_mib << 20;
  const std::string state_path =
      absl::StrFormat("%s/archive_bench.%d.state", dir, getpid());
  const std::string archive_path =
      absl::StrFormat("%s/archive_bench.%d.snap", dir, getpid());

  {  // The state file every contender reads.
    SyntheticSource src(size, 1);
    auto sink = FileSink::Create(state_path, 0600, false);
    if (!sink.ok()) Die(sink.status());
    std::string buf(1 << 20, '\0');
    for (;;) {
      size_t n = *src.Read(&buf[0], buf.size());
      if (n == 0) break;
      absl::Status s = sink->Write(absl::string_view(buf.data(), n));
      if (!s.ok()) Die(s);
    }
    absl::Status s = sink->SyncAndClose();
    if (!s.ok()) Die(s);
  }
  // Warm the page cache so the first contender is not penalised.
  TimeCommand("cat '" + state_path + "' > /dev/null");

  absl::PrintF("archive_bench: %d MiB of half-compressible state, %d cores\n",
               size_mib, sysconf(_SC_NPROCESSORS_ONLN));
  absl::PrintF("  %-40s %10s\n", "", "MB/s");
  const int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  for (int level : {1, 6}) {
    SnapshotMeta meta;
    meta.id = "bench";
    meta.index = 1;
    meta.term = 1;
    meta.size = size;
    // Writes the archive with `opts`; returns seconds and the archive size.
    auto write = [&](const WriterOptions& opts, uint64_t* archive_size) {
      auto src = FileSource::Open(state_path);
      if (!src.ok()) Die(src.status());
      auto out = FileSink::Create(archive_path, 0600, false);
      if (!out.ok()) Die(out.status());
      auto t0 = Clock::now();
      auto info = WriteArchive(meta, &*src, &*out, opts);
      if (!info.ok()) Die(info.status());
      double s = Seconds(t0);
      absl::Status closed = out->SyncAndClose();
      if (!closed.ok()) Die(closed);
      *archive_size = info->archive_size;
      return s;
    };
    WriterOptions parallel;
    parallel.compressor = ParallelGzipCompressor(level, cores);
    uint64_t parallel_size = 0;
    double parallel_s = write(parallel, &parallel_size);
    // The same with one compressor thread (--compress-threads=1): how the
    // writer scales with threads.
    WriterOptions single;
    single.compressor = ParallelGzipCompressor(level, 1);
    uint64_t single_size = 0;
    double single_s = write(single, &single_size);
    WriterOptions zlib;
    zlib.compression_level = level;
    uint64_t zlib_size = 0;
    double zlib_s = write(zlib, &zlib_size);

    // Verify the zlib archive, the one now on disk.
    auto in = FileSource::Open(archive_path);
    if (!in.ok()) Die(in.status());
    auto t0 = Clock::now();
    auto verified = ReadArchive(&*in, nullptr);
    if (!verified.ok()) Die(verified.status());
    double verify_s = Seconds(t0);

    absl::PrintF("level %d (archive %.1f MiB with zlib, %.1f MiB with libdeflate)\n",
                 level, zlib_size / 1048576.0, parallel_size / 1048576.0);
    std::string lv = std::to_string(level);
    Print({absl::StrFormat("write (snapshot-agent, libdeflate x%d)", cores), parallel_s}, size);
    Print({"write (snapshot-agent, libdeflate x1)", single_s}, size);
    Print({"write (snapshot-agent, zlib x1)", zlib_s}, size);
    Print({"gzip -" + lv,
           TimeCommand("gzip -" + lv + " -c '" + state_path + "' > /dev/null")},
          size);
    Print({absl::StrFormat("pigz -p %d -%s", cores, lv),
           TimeCommand(absl::StrFormat("pigz -p %d -%s -c '%s' > /dev/null",
                                       cores, lv, state_path))},
          size);
    Print({"verify (snapshot-agent)", verify_s}, size);
    Print({"gzip -d (no tar, no hashes)",
           TimeCommand("gzip -dc '" + archive_path + "' > /dev/null")},
          size);
    Print({"gzip -d | sha256sum",
           TimeCommand("gzip -dc '" + archive_path + "' | sha256sum > /dev/null")},
          size);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  absl::PrintF("peak RSS of archive_bench: %.1f MiB\n", ru.ru_maxrss / 1024.0);
  unlink(state_path.c_str());
  unlink(archive_path.c_str());
  return 0;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) { return snapshot::Main(argc, argv); }
