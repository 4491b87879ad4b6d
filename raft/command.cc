#include "raft/command.h"

#include <cstring>

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
      out.append(reinterpret_cast<const char*>(c.sha256.data()), c.sha256.size());
      break;
    case Command::kRestoreChunk:
      PutBytes(c.restore_id, &out);
      PutFixed64(c.offset, &out);
      PutBytes(c.value, &out);
      break;
    case Command::kRestoreCommit:
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
    case Command::kRestoreBegin:
      ok = r.Bytes(&c.restore_id) && r.U64(&c.size) &&
           r.Raw(c.sha256.data(), c.sha256.size());
      break;
    case Command::kRestoreChunk:
      ok = r.Bytes(&c.restore_id) && r.U64(&c.offset) && r.Bytes(&c.value);
      break;
    case Command::kRestoreCommit:
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
