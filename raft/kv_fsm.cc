#include "raft/kv_fsm.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/status_macros.h"

namespace snapshot {
namespace kv {
namespace {

constexpr char kImageMagic[4] = {'S', 'A', 'F', 'S'};
constexpr uint8_t kImageVersion = 1;
constexpr size_t kRememberedRestores = 32;

void PutStr(absl::string_view s, std::string* out) {
  PutFixed64(s.size(), out);
  out->append(s.data(), s.size());
}

struct Cursor {
  absl::string_view in;
  bool U64(uint64_t* v) {
    if (in.size() < 8) return false;
    *v = DecodeFixed64(in.data());
    in.remove_prefix(8);
    return true;
  }
  bool Str(absl::string_view* s) {
    uint64_t n;
    if (!U64(&n) || in.size() < n) return false;
    *s = in.substr(0, n);
    in.remove_prefix(n);
    return true;
  }
};

}  // namespace

const char* ApplyResultName(int r) {
  switch (r) {
    case kApplied:
      return "applied";
    case kBadEntry:
      return "malformed log entry";
    case kNoSuchRestore:
      return "no such restore is staged (it was superseded by another restore "
             "or lost its leader)";
    case kRestoreIncomplete:
      return "the staged state does not have the announced length and SHA-256";
    case kRestoreInvalidState:
      return "the staged state is not a valid key-value state";
    default:
      return "unknown result";
  }
}

bool KvFsm::RestoreCommitted(const std::string& id) const {
  return std::find(committed_restores_.begin(), committed_restores_.end(),
                   id) != committed_restores_.end();
}

ApplyResult KvFsm::Apply(absl::string_view entry) {
  absl::StatusOr<Command> c = DecodeCommand(entry);
  if (!c.ok()) return kBadEntry;
  switch (c->type) {
    case Command::kPut:
      if (!ValidateEntry(c->key, c->value).ok()) return kBadEntry;
      state_.Put(c->key, c->value);
      return kApplied;
    case Command::kDelete:
      state_.Delete(c->key);
      return kApplied;
    case Command::kRestoreBegin:
      if (RestoreCommitted(c->restore_id)) return kApplied;  // replayed
      staging_.emplace();
      staging_->id = c->restore_id;
      staging_->size = c->size;
      staging_->sha256 = c->sha256;
      return kApplied;
    case Command::kRestoreChunk: {
      if (RestoreCommitted(c->restore_id)) return kApplied;
      if (!staging_ || staging_->id != c->restore_id) return kNoSuchRestore;
      // A chunk proposed twice (a retry) is applied once.
      if (c->offset != staging_->received) return kApplied;
      staging_->received += c->value.size();
      staging_->chunks.push_back(
          std::make_shared<const std::string>(std::move(c->value)));
      return kApplied;
    }
    case Command::kRestoreCommit:
      return Commit(c->restore_id);
  }
  return kBadEntry;
}

ApplyResult KvFsm::Commit(const std::string& id) {
  if (RestoreCommitted(id)) return kApplied;  // idempotent
  if (!staging_ || staging_->id != id) return kNoSuchRestore;
  Staging staged = std::move(*staging_);
  staging_.reset();
  if (staged.received != staged.size) return kRestoreIncomplete;
  Sha256 h;
  for (const auto& c : staged.chunks) h.Update(*c);
  if (h.Finish() != staged.sha256) return kRestoreIncomplete;
  KvState next;
  StateDecoder d([&next](std::string k, std::string v) { next.Put(k, v); });
  for (const auto& c : staged.chunks) {
    if (!d.Feed(*c).ok()) return kRestoreInvalidState;
  }
  if (!d.Finish().ok()) return kRestoreInvalidState;
  state_ = std::move(next);  // the atomic swap
  committed_restores_.push_back(id);
  if (committed_restores_.size() > kRememberedRestores) {
    committed_restores_.pop_front();
  }
  return kApplied;
}

FsmImage KvFsm::Capture() const {
  FsmImage img;
  img.kv = state_.View();
  img.committed_restores = committed_restores_;
  img.staging = staging_;
  return img;
}

std::string FsmImage::Serialize() const {
  std::string out(kImageMagic, sizeof(kImageMagic));
  out.push_back(static_cast<char>(kImageVersion));
  out.append(3, '\0');
  // The key-value state in its own serialized form.
  PutFixed64(kv.SerializedSize(), &out);
  size_t at = out.size();
  out.resize(at + kv.SerializedSize());
  std::unique_ptr<ByteSource> src = kv.NewSource();
  size_t filled = 0;
  while (filled < kv.SerializedSize()) {
    size_t n = *src->Read(&out[at + filled], kv.SerializedSize() - filled);
    if (n == 0) break;
    filled += n;
  }
  PutFixed64(committed_restores.size(), &out);
  for (const auto& id : committed_restores) PutStr(id, &out);
  out.push_back(staging ? 1 : 0);
  if (staging) {
    PutStr(staging->id, &out);
    PutFixed64(staging->size, &out);
    out.append(reinterpret_cast<const char*>(staging->sha256.data()), 32);
    PutFixed64(staging->received, &out);
    for (const auto& c : staging->chunks) out += *c;
  }
  return out;
}

absl::Status KvFsm::Load(absl::string_view image) {
  auto bad = [](const char* what) {
    return absl::InternalError(
        absl::StrCat("the Raft snapshot of the state machine is malformed: ",
                     what));
  };
  if (image.size() < 8 || memcmp(image.data(), kImageMagic, 4) != 0) {
    return bad("bad magic");
  }
  if (static_cast<uint8_t>(image[4]) != kImageVersion) {
    return bad("unsupported version");
  }
  Cursor c{image.substr(8)};
  absl::string_view kv_bytes;
  if (!c.Str(&kv_bytes)) return bad("truncated state");
  absl::StatusOr<KvState> state = DecodeState(kv_bytes);
  if (!state.ok()) return bad("invalid key-value state");
  uint64_t n;
  if (!c.U64(&n)) return bad("truncated restore list");
  std::deque<std::string> restores;
  for (uint64_t i = 0; i < n; ++i) {
    absl::string_view id;
    if (!c.Str(&id)) return bad("truncated restore id");
    restores.emplace_back(id);
  }
  if (c.in.empty()) return bad("missing staging flag");
  bool has_staging = c.in[0] != 0;
  c.in.remove_prefix(1);
  std::optional<Staging> staging;
  if (has_staging) {
    staging.emplace();
    absl::string_view id;
    if (!c.Str(&id) || !c.U64(&staging->size) || c.in.size() < 32) {
      return bad("truncated staging header");
    }
    staging->id = std::string(id);
    memcpy(staging->sha256.data(), c.in.data(), 32);
    c.in.remove_prefix(32);
    if (!c.U64(&staging->received) || c.in.size() != staging->received) {
      return bad("staged bytes do not match their length");
    }
    staging->chunks.push_back(std::make_shared<const std::string>(c.in));
    c.in = absl::string_view();
  }
  if (!c.in.empty()) return bad("trailing bytes");
  state_ = std::move(*state);
  committed_restores_ = std::move(restores);
  staging_ = std::move(staging);
  return absl::OkStatus();
}

}  // namespace kv
}  // namespace snapshot
