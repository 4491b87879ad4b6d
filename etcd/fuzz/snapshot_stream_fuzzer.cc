// libFuzzer target for etcd's Maintenance.Snapshot stream on its way into an
// archive (tools/fuzz.sh etcd builds and runs it with ASan and UBSan): the
// input is a sequence of messages — [8-byte remaining_bytes][2-byte blob
// length][blob] — checked by EtcdSnapshotStream and, while it accepts them,
// written as state.bin by the archive writer. A stream the rules accept whole
// must give an archive that reads back with the same state; nothing may
// crash, leak or hit undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "archive/archive.h"
#include "base/io.h"
#include "etcd/snapshot_stream.h"

namespace {

struct Message {
  uint64_t remaining;
  std::string blob;
};

std::vector<Message> Parse(const uint8_t* data, size_t size) {
  std::vector<Message> out;
  size_t at = 0;
  while (at + 10 <= size) {
    Message m;
    memcpy(&m.remaining, data + at, 8);
    // Small values are the interesting ones: keep them in range.
    m.remaining %= 1 << 20;
    const size_t len = std::min<size_t>(data[at + 8] | (data[at + 9] << 8), size - at - 10);
    m.blob.assign(reinterpret_cast<const char*>(data + at + 10), len);
    at += 10 + len;
    out.push_back(std::move(m));
  }
  return out;
}

// state.bin from the messages, as the etcd engine produces it.
class MessagesSource : public snapshot::ByteSource {
 public:
  explicit MessagesSource(std::vector<Message> msgs)
      : msgs_(std::move(msgs)), rules_(msgs_[0].blob.size(), msgs_[0].remaining) {}
  uint64_t state_size() const { return rules_.state_size(); }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    while (pos_ == cur_.size()) {
      if (next_ == msgs_.size()) {
        absl::Status end = rules_.End();
        if (!end.ok()) return end;
        return 0;
      }
      const Message& m = msgs_[next_++];
      absl::Status s = rules_.Accept(m.blob, m.remaining);
      if (!s.ok()) return s;
      cur_ = m.blob;
      pos_ = 0;
    }
    size_t k = std::min(n, cur_.size() - pos_);
    memcpy(buf, cur_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::vector<Message> msgs_;
  snapshot::EtcdSnapshotStream rules_;
  std::string cur_;
  size_t pos_ = 0;
  size_t next_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<Message> msgs = Parse(data, size);
  if (msgs.empty()) return 0;
  MessagesSource src(msgs);
  snapshot::SnapshotMeta meta;
  meta.id = "1-1-0";
  meta.index = 1;
  meta.term = 1;
  meta.engine = snapshot::kEngineEtcd;
  meta.size = src.state_size();
  std::string archive;
  snapshot::StringSink sink(&archive);
  snapshot::WriterOptions wo;
  wo.compression_level = 1;
  auto written = snapshot::WriteArchive(meta, &src, &sink, wo);
  if (!written.ok()) return 0;
  // Accepted whole: the archive reads back to the same state.
  snapshot::StringSource back(archive);
  auto read = snapshot::ReadArchive(&back, nullptr);
  if (!read.ok() || read->state_sha256 != written->state_sha256) {
    fprintf(stderr, "an accepted stream gave an archive that does not read back\n");
    abort();
  }
  return 0;
}
