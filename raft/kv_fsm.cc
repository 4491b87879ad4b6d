#include "raft/kv_fsm.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/deflate.h"
#include "base/status_macros.h"
#include "base/thread_name.h"

namespace snapshot {
namespace kv {
namespace {

constexpr char kImageMagic[4] = {'S', 'A', 'F', 'S'};
constexpr uint8_t kImageVersion = 2;  // 1: staging without the invalid flag
constexpr size_t kRememberedRestores = 32;

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
      return "the staged state does not have the announced length and checksum";
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

Staging::Staging() {
  KvState* next_state = next.get();
  decoder = std::make_unique<StateDecoder>(
      [next_state](absl::string_view k, absl::string_view v) { next_state->Append(k, v); });
}

void Staging::Add(absl::string_view data) {
  crc64 = Crc64(crc64, data);
  if (!invalid && !decoder->Feed(data).ok()) Poison();
}

void Staging::Poison() {
  // Nothing of it can be committed: let the memory go now.
  invalid = true;
  next.reset();
  decoder.reset();
}

StagingWorker::StagingWorker() : thread_([this] { Run(); }) {}

StagingWorker::~StagingWorker() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void StagingWorker::Add(std::shared_ptr<Staging> s, std::string bytes,
                        uint64_t raw_size) {
  std::unique_lock<std::mutex> l(mu_);
  idle_cv_.wait(l, [&] { return queued_bytes_ < kMaxQueuedBytes; });
  queued_bytes_ += bytes.size();
  jobs_.push_back(Job{std::move(s), std::move(bytes), raw_size});
  work_cv_.notify_one();
}

void StagingWorker::Drain() {
  std::unique_lock<std::mutex> l(mu_);
  idle_cv_.wait(l, [&] { return jobs_.empty() && !busy_; });
}

void StagingWorker::Run() {
  SetThreadName("sa-staging");
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> l(mu_);
      work_cv_.wait(l, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
    }
    Staging& s = *job.staging;
    if (job.raw_size == 0) {
      s.Add(job.bytes);
    } else if (!DecodeChunkSegments(job.bytes, job.raw_size, &inflated_,
                                    [&s](absl::string_view raw) { s.Add(raw); })) {
      // Every node decodes the same logged bytes: a failure is the same
      // everywhere (and would mean a proposer bug).
      s.Poison();
    }
    const size_t n = job.bytes.size();
    job = Job{};  // the staging may go now
    {
      std::lock_guard<std::mutex> l(mu_);
      queued_bytes_ -= n;
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

ApplyResult KvFsm::Apply(absl::string_view entry) {
  absl::StatusOr<Command> c = DecodeCommand(entry);
  if (!c.ok()) return kBadEntry;
  switch (c->type) {
    case Command::kPut:
      if (!ValidateEntry(c->key, c->value).ok()) return kBadEntry;
      state_.Put(std::move(c->key), std::move(c->value));
      return kApplied;
    case Command::kDelete:
      state_.Delete(c->key);
      return kApplied;
    case Command::kRestoreBegin:
      if (RestoreCommitted(c->restore_id)) return kApplied;  // replayed
      // A newer restore replaces an unfinished one (whose queued chunks
      // finish first, so that its memory is gone before the new one grows).
      staging_.reset();
      worker_.Drain();
      staging_ = std::make_shared<Staging>();
      staging_->id = c->restore_id;
      staging_->size = c->size;
      return kApplied;
    case Command::kRestoreChunk:
    case Command::kRestoreChunkDeflated: {
      if (RestoreCommitted(c->restore_id)) return kApplied;
      if (!staging_ || staging_->id != c->restore_id) return kNoSuchRestore;
      // A chunk proposed twice (a retry) is applied once.
      if (c->offset != staging_->received) return kApplied;
      uint64_t raw_size = 0;
      if (c->type == Command::kRestoreChunkDeflated) {
        if (c->raw_size == 0 || c->raw_size > kRestoreChunkBytes) return kBadEntry;
        raw_size = c->raw_size;
      }
      staging_->received += raw_size > 0 ? raw_size : c->data.size();
      // Decoded on the worker; a fault shows at commit.
      worker_.Add(staging_, std::string(c->data), raw_size);
      return kApplied;
    }
    case Command::kRestoreCommit:
      return Commit(*c);
    case Command::kRestoreAbort:
      if (staging_ && staging_->id == c->restore_id) {
        staging_.reset();
        worker_.Drain();  // and its memory with it
      }
      return kApplied;
  }
  return kBadEntry;
}

ApplyResult KvFsm::Commit(const Command& c) {
  if (RestoreCommitted(c.restore_id)) return kApplied;  // idempotent
  if (!staging_ || staging_->id != c.restore_id) return kNoSuchRestore;
  worker_.Drain();
  std::shared_ptr<Staging> staged = std::move(staging_);
  if (staged->invalid) return kRestoreInvalidState;
  if (staged->received != staged->size) return kRestoreIncomplete;
  if (staged->crc64 != c.crc64) return kRestoreIncomplete;
  if (!staged->decoder->Finish().ok()) return kRestoreInvalidState;
  state_ = std::move(*staged->next);  // the atomic swap
  committed_restores_.push_back(c.restore_id);
  if (committed_restores_.size() > kRememberedRestores) {
    committed_restores_.pop_front();
  }
  restore_committed_ = true;
  return kApplied;
}

FsmImage KvFsm::Capture() {
  worker_.Drain();
  FsmImage img;
  img.kv = state_.View();
  img.committed_restores = committed_restores_;
  if (staging_) {
    const Staging& s = *staging_;
    StagingImage& si = img.staging.emplace();
    si.id = s.id;
    si.size = s.size;
    si.received = s.received;
    si.invalid = s.invalid;
    if (!s.invalid) {
      si.header_done = s.decoder->header_done();
      si.expected = s.decoder->expected();
      si.entries = s.next->View();
      si.pending = std::string(s.decoder->pending());
    }
  }
  return img;
}

namespace {

// The envelope's layout, written through `o`, which takes Bytes(data, n)
// (copied) and View(view, skip) (a state view's serialized form after its
// first `skip` bytes).
template <typename O>
void WriteImage(const FsmImage& img, O& o) {
  auto u64 = [&o](uint64_t v) {
    std::string b;
    PutFixed64(v, &b);
    o.Bytes(b.data(), 8);
  };
  auto str = [&](absl::string_view s) {
    u64(s.size());
    o.Bytes(s.data(), s.size());
  };
  o.Bytes(kImageMagic, sizeof(kImageMagic));
  const char version[4] = {static_cast<char>(kImageVersion), 0, 0, 0};
  o.Bytes(version, 4);
  // The key-value state in its own serialized form.
  u64(img.kv.SerializedSize());
  o.View(img.kv, 0);
  u64(img.committed_restores.size());
  for (const auto& id : img.committed_restores) str(id);
  const char has_staging = img.staging ? 1 : 0;
  o.Bytes(&has_staging, 1);
  if (!img.staging) return;
  const StagingImage& s = *img.staging;
  str(s.id);
  u64(s.size);
  const char reserved[32] = {};  // a SHA-256 in earlier versions
  o.Bytes(reserved, sizeof(reserved));
  u64(s.received);
  const char invalid = s.invalid ? 1 : 0;
  o.Bytes(&invalid, 1);
  if (s.invalid) return;
  // The bytes received, rebuilt: the header, the decoded entries (a view's
  // serialized form after its own header) and the incomplete rest.
  if (s.header_done) {
    const std::string h = EncodeStateHeader(s.expected);
    o.Bytes(h.data(), h.size());
    o.View(s.entries, kHeaderBytes);
  }
  o.Bytes(s.pending.data(), s.pending.size());
}

// Calls fn for the pieces of `view`'s serialized form after its first `skip`
// bytes.
template <typename Fn>
void ViewPieces(const StateView& view, uint64_t skip, Fn fn) {
  view.ForEachPiece([&](absl::string_view piece, bool stable) {
    const size_t k = std::min<uint64_t>(skip, piece.size());
    skip -= k;
    piece.remove_prefix(k);
    if (!piece.empty()) fn(piece, stable);
  });
}

// Copies to a cursor; the size was computed beforehand.
struct CopyOut {
  char* p;
  void Bytes(const void* d, size_t n) {
    memcpy(p, d, n);
    p += n;
  }
  void View(const StateView& v, uint64_t skip) {
    ViewPieces(v, skip, [this](absl::string_view piece, bool) { Bytes(piece.data(), piece.size()); });
  }
};

// Collects pieces: the image's leaves by reference, the rest copied into
// arena strings of up to kArenaPiece bytes.
struct PieceOut {
  static constexpr size_t kByReference = 4 << 10;  // pieces this large are not copied
  static constexpr size_t kArenaPiece = 1 << 20;
  std::deque<std::string>* arena;
  std::vector<absl::string_view>* pieces;
  std::string current;

  void Bytes(const void* d, size_t n) {
    if (current.size() + n > kArenaPiece) Flush();
    current.append(static_cast<const char*>(d), n);
  }
  void View(const StateView& v, uint64_t skip) {
    ViewPieces(v, skip, [this](absl::string_view piece, bool stable) {
      if (stable && piece.size() >= kByReference) {
        Flush();
        pieces->push_back(piece);
      } else {
        Bytes(piece.data(), piece.size());
      }
    });
  }
  void Flush() {
    if (current.empty()) return;
    arena->push_back(std::move(current));  // a deque never moves its elements
    pieces->push_back(arena->back());
    current = std::string();
  }
};

}  // namespace

uint64_t FsmImage::SerializedSize() const {
  uint64_t n = 8 + 8 + kv.SerializedSize() + 8;
  for (const auto& id : committed_restores) n += 8 + id.size();
  n += 1;
  if (staging) n += 8 + staging->id.size() + 8 + 32 + 8 + 1 +
                    (staging->invalid ? 0 : staging->received);
  return n;
}

void FsmImage::SerializeTo(char* out) const {
  CopyOut o{out};
  WriteImage(*this, o);
}

std::vector<absl::string_view> FsmImage::Pieces(std::deque<std::string>* arena) const {
  std::vector<absl::string_view> pieces;
  PieceOut o{arena, &pieces, std::string()};
  WriteImage(*this, o);
  o.Flush();
  return pieces;
}

std::string FsmImage::Serialize() const {
  std::string out(SerializedSize(), '\0');
  SerializeTo(&out[0]);
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
  const uint8_t version = static_cast<uint8_t>(image[4]);
  if (version != 1 && version != kImageVersion) {
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
  std::shared_ptr<Staging> staging;
  if (has_staging) {
    staging = std::make_shared<Staging>();
    absl::string_view id;
    uint64_t size, received;
    if (!c.Str(&id) || !c.U64(&size) || c.in.size() < 32) {
      return bad("truncated staging header");
    }
    staging->id = std::string(id);
    staging->size = size;
    c.in.remove_prefix(32);  // reserved
    if (!c.U64(&received)) return bad("truncated staging header");
    bool invalid = false;
    if (version >= 2) {  // version 1 had no invalid flag
      if (c.in.empty()) return bad("truncated staging header");
      invalid = c.in[0] != 0;
      c.in.remove_prefix(1);
    }
    if (invalid) {
      staging->received = received;
      staging->Poison();
    } else {
      if (c.in.size() != received) return bad("staged bytes do not match their length");
      staging->received = received;
      staging->Add(c.in);
      c.in = absl::string_view();
    }
  }
  if (!c.in.empty()) return bad("trailing bytes");
  worker_.Drain();  // nothing of the old staging may be left in flight
  state_ = std::move(*state);
  committed_restores_ = std::move(restores);
  staging_ = std::move(staging);
  return absl::OkStatus();
}

}  // namespace kv
}  // namespace snapshot
