// KvStateSource: the serialized key-value state (raft/kv_state.h, "SAKV") of
// `entries` generated records, produced on the fly: memory does not grow with
// the size. For tests and benchmarks that need states of hundreds of MiB.
//
// Keys are "key/%010d" in order; each value is `value_bytes` long, its first
// half pseudo-random and its second half repetitive text, so that gzip
// shrinks the state to a little over half. The same seed gives the same
// bytes.
//
// Threading: one instance per thread.
#ifndef SNAPSHOT_AGENT_RAFT_TESTING_KV_STATE_SOURCE_H_
#define SNAPSHOT_AGENT_RAFT_TESTING_KV_STATE_SOURCE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "base/coding.h"
#include "base/io.h"
#include "raft/kv_state.h"

namespace snapshot {
namespace testing {

class KvStateSource : public ByteSource {
 public:
  // `value_bytes` 0 (kSpread): sizes spread as small records are — from
  // ~100 B to 16 KiB, most around 1 KiB (SpreadSize).
  static constexpr size_t kSpread = 0;

  KvStateSource(uint64_t entries, size_t value_bytes, uint64_t seed = 1)
      : entries_(entries), value_bytes_(value_bytes), rng_(seed) {
    pending_.assign("SAKV\x01\0\0\0", 8);
    PutFixed64(entries_, &pending_);
    size_ = kv::kHeaderBytes;
    if (value_bytes_ != kSpread) {
      size_ += entries_ * kv::EntryBytes(14, value_bytes_);
    } else {
      for (uint64_t i = 0; i < entries_; ++i) size_ += kv::EntryBytes(14, SpreadSize(i));
    }
  }

  // Entries needed for a state of about `bytes` with values of
  // `value_bytes` (or kSpread).
  static uint64_t EntriesFor(uint64_t bytes, size_t value_bytes) {
    if (value_bytes != kSpread) {
      return std::max<uint64_t>(1, bytes / kv::EntryBytes(14, value_bytes));
    }
    uint64_t n = 0, total = kv::kHeaderBytes;
    while (total < bytes) total += kv::EntryBytes(14, SpreadSize(n++));
    return std::max<uint64_t>(1, n);
  }

  // The value size of entry `i` in kSpread mode: 70% 512 B–2 KiB, 20% 100–511 B,
  // 10% 2–16 KiB (Kubernetes objects, Nomad allocations, Consul KV entries).
  static size_t SpreadSize(uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const uint64_t pick = z % 100, r = z >> 32;
    if (pick < 70) return 512 + r % 1537;
    if (pick < 90) return 100 + r % 412;
    return 2048 + r % 14337;
  }

  // The exact serialized length.
  uint64_t size() const { return size_; }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t done = 0;
    while (done < n) {
      if (pos_ == pending_.size()) {
        if (next_ == entries_) break;
        NextEntry();
      }
      size_t k = std::min(n - done, pending_.size() - pos_);
      memcpy(buf + done, pending_.data() + pos_, k);
      pos_ += k;
      done += k;
    }
    return done;
  }

 private:
  void NextEntry() {
    pending_.clear();
    pos_ = 0;
    const size_t value_bytes = value_bytes_ != kSpread ? value_bytes_ : SpreadSize(next_);
    const std::string key = absl::StrFormat("key/%010d", next_++);
    PutFixed32(static_cast<uint32_t>(key.size()), &pending_);
    PutFixed32(static_cast<uint32_t>(value_bytes), &pending_);
    pending_ += key;
    const size_t random_half = value_bytes / 2;
    for (size_t i = 0; i < random_half; i += 8) {
      uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      char bytes[8];
      memcpy(bytes, &z, 8);
      pending_.append(bytes, std::min<size_t>(8, random_half - i));
    }
    static constexpr char kText[] = "{\"user\":\"alice\",\"role\":\"admin\"} ";
    for (size_t i = random_half; i < value_bytes; ++i) {
      pending_.push_back(kText[i % (sizeof(kText) - 1)]);
    }
  }

  const uint64_t entries_;
  const size_t value_bytes_;
  uint64_t rng_;
  uint64_t size_ = 0;
  uint64_t next_ = 0;
  std::string pending_;
  size_t pos_ = 0;
};

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_RAFT_TESTING_KV_STATE_SOURCE_H_
