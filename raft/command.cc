#include "raft/command.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/coding.h"

namespace snapshot {
namespace kv {
namespace {

void PutBytes(absl::string_view s, std::string* out) {
  PutFixed32(static_cast<uint32_t>(s.size()), out);
  out->append(s.data(), s.size());
}

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    *v = DecodeFixed64(in_.data());
    in_.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string* s) {
    if (in_.size() < 4) return false;
    uint32_t n = DecodeFixed32(in_.data());
    in_.remove_prefix(4);
    if (in_.size() < n) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool View(absl::string_view* s) {
    if (in_.size() < 4) return false;
    uint32_t n = DecodeFixed32(in_.data());
    in_.remove_prefix(4);
    if (in_.size() < n) return false;
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool Raw(void* p, size_t n) {
    if (in_.size() < n) return false;
    memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  // Only zero padding (fewer than 8 bytes) may remain.
  bool AtPaddedEnd() const {
    if (in_.size() >= 8) return false;
    for (char c : in_) {
      if (c != 0) return false;
    }
    return true;
  }

 private:
  absl::string_view in_;
};

}  // namespace

bool EncodeChunkSegments(absl::string_view chunk, FastDeflater* deflater,
                         std::string* out) {
  const size_t budget = chunk.size() - chunk.size() / 32;
  out->resize(budget);
  size_t used = 0;
  // Emits the run chunk[from, to): deflated when that saves 3%.
  auto emit = [&](size_t from, size_t to, bool incompressible) {
    const size_t raw = to - from;
    if (used + 8 > budget) return false;
    char* head = &(*out)[used];
    size_t stored = 0;
    if (!incompressible && raw >= 64) {
      const size_t room = std::min(budget - used - 8, raw - raw / 32);
      stored = deflater->Deflate(chunk.substr(from, raw), head + 8, room);
    }
    if (stored == 0) {  // as it is
      if (used + 8 + raw > budget) return false;
      memcpy(head + 8, chunk.data() + from, raw);
      stored = raw;
    }
    std::string h;
    PutFixed32(static_cast<uint32_t>(raw), &h);
    PutFixed32(static_cast<uint32_t>(stored), &h);
    memcpy(head, h.data(), 8);
    used += 8 + stored;
    return true;
  };
  std::vector<FastDeflater::Run> runs;
  deflater->Classify(chunk, &runs);
  if (runs.empty()) runs.push_back(FastDeflater::Run{});
  for (const FastDeflater::Run& r : runs) {
    if (!emit(r.start, r.start + r.size, r.incompressible)) return false;
  }
  out->resize(used);
  return true;
}

bool DecodeChunkSegments(absl::string_view data, uint64_t raw_size, std::string* scratch,
                         const std::function<void(absl::string_view)>& fn) {
  uint64_t total = 0;
  while (!data.empty()) {
    if (data.size() < 8) return false;
    const uint32_t raw = DecodeFixed32(data.data());
    const uint32_t stored = DecodeFixed32(data.data() + 4);
    data.remove_prefix(8);
    if (stored > raw || stored > data.size() || raw > raw_size - total) return false;
    absl::string_view bytes = data.substr(0, stored);
    data.remove_prefix(stored);
    if (stored < raw) {
      scratch->resize(raw);
      if (!InflateRaw(bytes, &(*scratch)[0], raw)) return false;
      bytes = *scratch;
    }
    fn(bytes);
    total += raw;
  }
  return total == raw_size;
}

std::string EncodeCommand(const Command& c) {
  std::string out;
  out.push_back(static_cast<char>(c.type));
  out.append(7, '\0');
  switch (c.type) {
    case Command::kPut:
      PutBytes(c.key, &out);
      PutBytes(c.value, &out);
      break;
    case Command::kDelete:
      PutBytes(c.key, &out);
      break;
    case Command::kRestoreBegin:
      PutBytes(c.restore_id, &out);
      PutFixed64(c.size, &out);
      out.append(32, '\0');  // reserved (a SHA-256 in earlier versions)
      break;
    case Command::kRestoreChunk:
      out.reserve(8 + 4 + c.restore_id.size() + 8 + 4 + c.data.size() + 8);
      PutBytes(c.restore_id, &out);
      PutFixed64(c.offset, &out);
      PutBytes(c.data, &out);
      break;
    case Command::kRestoreChunkDeflated:
      out.reserve(8 + 4 + c.restore_id.size() + 16 + 4 + c.data.size() + 8);
      PutBytes(c.restore_id, &out);
      PutFixed64(c.offset, &out);
      PutFixed64(c.raw_size, &out);
      PutBytes(c.data, &out);
      break;
    case Command::kRestoreCommit:
      PutBytes(c.restore_id, &out);
      PutFixed64(c.crc64, &out);
      break;
    case Command::kRestoreAbort:
      PutBytes(c.restore_id, &out);
      break;
  }
  out.append((8 - out.size() % 8) % 8, '\0');
  return out;
}

absl::StatusOr<Command> DecodeCommand(absl::string_view entry) {
  auto bad = [&](const char* what) {
    return absl::InternalError(
        absl::StrCat("malformed log entry (", entry.size(), " bytes): ", what));
  };
  if (entry.size() < 8 || entry.size() % 8 != 0) return bad("bad length");
  Command c;
  c.type = static_cast<Command::Type>(entry[0]);
  Reader r(entry.substr(8));
  bool ok = false;
  switch (c.type) {
    case Command::kPut:
      ok = r.Bytes(&c.key) && r.Bytes(&c.value);
      break;
    case Command::kDelete:
      ok = r.Bytes(&c.key);
      break;
    case Command::kRestoreBegin: {
      char reserved[32];
      ok = r.Bytes(&c.restore_id) && r.U64(&c.size) && r.Raw(reserved, sizeof(reserved));
      break;
    }
    case Command::kRestoreChunk:
      ok = r.Bytes(&c.restore_id) && r.U64(&c.offset) && r.View(&c.data);
      break;
    case Command::kRestoreChunkDeflated:
      ok = r.Bytes(&c.restore_id) && r.U64(&c.offset) && r.U64(&c.raw_size) &&
           r.View(&c.data);
      break;
    case Command::kRestoreCommit:
      // (A commit of an earlier version, with a SHA-256, decodes as
      // malformed: the restore it ends is then not applied, nowhere.)
      ok = r.Bytes(&c.restore_id) && r.U64(&c.crc64);
      break;
    case Command::kRestoreAbort:
      ok = r.Bytes(&c.restore_id);
      break;
    default:
      return bad("unknown command type");
  }
  if (!ok) return bad("truncated fields");
  if (!r.AtPaddedEnd()) return bad("unexpected bytes after the command");
  return c;
}

}  // namespace kv
}  // namespace snapshot
