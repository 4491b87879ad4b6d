// make_kv_archive OUT STATE_MIB [LEVEL [VALUE_BYTES]]: writes a snapshot
// archive of a generated key-value state of about STATE_MIB MiB (values of
// VALUE_BYTES, default 64 KiB, half random; 0: spread small records), for
// tests, benchmarks and profiles that need a large valid archive.
#include <cstdlib>
#include <iostream>

#include "absl/strings/numbers.h"
#include "archive/archive.h"
#include "raft/testing/kv_state_source.h"

int main(int argc, char** argv) {
  uint64_t mib = 0, value_bytes = 64 << 10;
  int level = 1;
  if (argc < 3 || !absl::SimpleAtoi(argv[2], &mib) ||
      (argc > 3 && !absl::SimpleAtoi(argv[3], &level)) ||
      (argc > 4 && !absl::SimpleAtoi(argv[4], &value_bytes))) {
    std::cerr << "usage: make_kv_archive OUT STATE_MIB [LEVEL [VALUE_BYTES]]\n";
    return 2;
  }
  using snapshot::testing::KvStateSource;
  KvStateSource state(KvStateSource::EntriesFor(mib << 20, value_bytes), value_bytes);
  snapshot::SnapshotMeta meta;
  meta.id = "1-1-0";
  meta.index = 1;
  meta.term = 1;
  meta.size = state.size();
  auto out = snapshot::FileSink::Create(argv[1], 0600, /*exclusive=*/false);
  if (!out.ok()) {
    std::cerr << out.status() << "\n";
    return 1;
  }
  snapshot::WriterOptions o;
  o.compression_level = level;
  auto info = snapshot::WriteArchive(meta, &state, &*out, o);
  if (!info.ok() || !out->SyncAndClose().ok()) {
    std::cerr << info.status() << "\n";
    return 1;
  }
  return 0;
}
