#include "raft/kv_state.h"

#include <algorithm>
#include <cstring>
#include <queue>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/coding.h"
#include "base/status_macros.h"

namespace snapshot {
namespace kv {
namespace {

constexpr char kMagic[4] = {'S', 'A', 'K', 'V'};
constexpr uint8_t kVersion = 1;

// FNV-1a: stable across processes (the shard layout is in-memory only, but a
// stable hash keeps behaviour reproducible).
size_t ShardOf(absl::string_view key) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  return static_cast<size_t>(h % kShards);
}

// Serializes a view: a k-way merge of the sorted shards, one entry at a time.
class ViewSource : public ByteSource {
 public:
  explicit ViewSource(StateView view, std::vector<std::shared_ptr<const Shard>> shards,
                      uint64_t count)
      : view_(std::move(view)), shards_(std::move(shards)) {
    pending_ = EncodeStateHeader(count);
    for (size_t i = 0; i < shards_.size(); ++i) {
      if (!shards_[i]->map.empty()) heap_.push({shards_[i]->map.begin(), i});
    }
  }

  // The entry's header and key go through pending_; its value is copied
  // straight from the (immutable) shard into buf: one copy of the bulk.
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t written = 0;
    while (written < n) {
      if (pos_ == pending_.size() && value_.empty() && !Advance()) break;
      absl::string_view from =
          pos_ < pending_.size() ? absl::string_view(pending_).substr(pos_) : value_;
      const size_t k = std::min(n - written, from.size());
      memcpy(buf + written, from.data(), k);
      written += k;
      if (pos_ < pending_.size()) {
        pos_ += k;
      } else {
        value_.remove_prefix(k);
      }
    }
    return written;
  }

  // The rest of the serialized form a piece at a time, without copying: the
  // state header or an entry's header and key (`stable` false: valid until
  // the next call), then the entry's value (`stable` true: inside the shard,
  // valid while the view lives). False at the end. Not mixed with Read.
  bool NextPiece(absl::string_view* piece, bool* stable) {
    if (pos_ == pending_.size() && value_.empty() && !Advance()) return false;
    if (pos_ < pending_.size()) {
      *piece = absl::string_view(pending_).substr(pos_);
      *stable = false;
      pos_ = pending_.size();
    } else {
      *piece = value_;
      *stable = true;
      value_ = absl::string_view();
    }
    return true;
  }

 private:
  // Loads the next entry into pending_ and value_; false when none is left.
  bool Advance() {
    if (heap_.empty()) return false;
    Cursor c = heap_.top();
    heap_.pop();
    pending_.clear();
    pos_ = 0;
    PutFixed32(c.it->first.size(), &pending_);
    PutFixed32(c.it->second.size(), &pending_);
    pending_ += c.it->first;
    value_ = c.it->second;
    if (++c.it != shards_[c.shard]->map.end()) heap_.push(c);
    return true;
  }

  struct Cursor {
    std::map<std::string, std::string>::const_iterator it;
    size_t shard;
  };
  struct Greater {
    bool operator()(const Cursor& a, const Cursor& b) const {
      return a.it->first > b.it->first;
    }
  };
  StateView view_;  // keeps the shards alive
  std::vector<std::shared_ptr<const Shard>> shards_;
  std::priority_queue<Cursor, std::vector<Cursor>, Greater> heap_;
  std::string pending_;  // the next entry's header and key
  size_t pos_ = 0;
  absl::string_view value_;  // what is left of its value, after pending_
};

}  // namespace

std::string EncodeStateHeader(uint64_t count) {
  std::string h(kMagic, sizeof(kMagic));
  h.push_back(static_cast<char>(kVersion));
  h.append(3, '\0');
  PutFixed64(count, &h);
  return h;
}

absl::Status ValidateEntry(absl::string_view key, absl::string_view value) {
  if (key.empty()) return absl::InvalidArgumentError("key must not be empty");
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "key is %d bytes, over the limit of %d", key.size(), kMaxKeyBytes));
  }
  if (value.size() > kMaxValueBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("value is %d bytes, over the limit of %d",
                        value.size(), kMaxValueBytes));
  }
  return absl::OkStatus();
}

std::optional<std::string> StateView::Get(absl::string_view key) const {
  if (shards_.empty()) return std::nullopt;
  const auto& m = shards_[ShardOf(key)]->map;
  auto it = m.find(std::string(key));
  if (it == m.end()) return std::nullopt;
  return it->second;
}

ListPage StateView::List(absl::string_view prefix,
                        absl::string_view start_after, size_t limit,
                        uint64_t max_bytes) const {
  ListPage page;
  if (limit == 0) return page;
  using It = std::map<std::string, std::string>::const_iterator;
  struct Cursor {
    It it, end;
  };
  auto later = [](const Cursor& a, const Cursor& b) {
    return a.it->first > b.it->first;
  };
  // A k-way merge over the shards, from the first key after both the prefix
  // start and start_after: only the entries of the page are touched.
  std::string from(prefix);
  if (!start_after.empty() && start_after >= prefix) {
    from = std::string(start_after);
    from.push_back('\0');  // the smallest key greater than start_after
  }
  auto matches = [&](const It& it) {
    return absl::StartsWith(it->first, prefix);
  };
  std::priority_queue<Cursor, std::vector<Cursor>, decltype(later)> heap(later);
  for (const auto& shard : shards_) {
    It it = shard->map.lower_bound(from);
    if (it != shard->map.end() && matches(it)) heap.push({it, shard->map.end()});
  }
  uint64_t bytes = 0;
  while (!heap.empty()) {
    if (page.entries.size() >= limit || (bytes >= max_bytes && !page.entries.empty())) {
      page.more = true;
      break;
    }
    Cursor c = heap.top();
    heap.pop();
    bytes += c.it->first.size() + c.it->second.size();
    page.entries.emplace_back(c.it->first, c.it->second);
    if (++c.it != c.end && matches(c.it)) heap.push(c);
  }
  return page;
}

std::unique_ptr<ByteSource> StateView::NewSource() const {
  return std::make_unique<ViewSource>(*this, shards_, count_);
}

void StateView::ForEachPiece(
    const std::function<void(absl::string_view piece, bool stable)>& fn) const {
  ViewSource src(*this, shards_, count_);
  absl::string_view piece;
  bool stable;
  while (src.NextPiece(&piece, &stable)) fn(piece, stable);
}

KvState::KvState() {
  shards_.reserve(kShards);
  for (size_t i = 0; i < kShards; ++i) shards_.push_back(std::make_shared<Shard>());
}

Shard& KvState::MutableShard(size_t i) {
  // A view holds another reference: copy before writing (copy-on-write).
  if (shards_[i].use_count() > 1) shards_[i] = std::make_shared<Shard>(*shards_[i]);
  return *shards_[i];
}

void KvState::Put(std::string key, std::string value) {
  Shard& s = MutableShard(ShardOf(key));
  const uint64_t now = EntryBytes(key.size(), value.size());
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    s.map.emplace(std::move(key), std::move(value));
    ++count_;
  } else {
    uint64_t old = EntryBytes(it->first.size(), it->second.size());
    s.bytes -= old;
    bytes_ -= old;
    it->second = std::move(value);
  }
  s.bytes += now;
  bytes_ += now;
}

bool KvState::Delete(const std::string& key) {
  size_t i = ShardOf(key);
  auto it = shards_[i]->map.find(key);
  if (it == shards_[i]->map.end()) return false;
  Shard& s = MutableShard(i);
  it = s.map.find(key);
  uint64_t old = EntryBytes(key.size(), it->second.size());
  s.bytes -= old;
  bytes_ -= old;
  --count_;
  s.map.erase(it);
  return true;
}

std::optional<std::string> KvState::Get(absl::string_view key) const {
  const auto& m = shards_[ShardOf(key)]->map;
  auto it = m.find(std::string(key));
  if (it == m.end()) return std::nullopt;
  return it->second;
}

StateView KvState::View() const {
  StateView v;
  v.shards_.assign(shards_.begin(), shards_.end());
  v.count_ = count_;
  v.bytes_ = bytes_;
  return v;
}

StateDecoder::StateDecoder(EntryFn on_entry) : on_entry_(std::move(on_entry)) {}

absl::Status StateDecoder::Fail(const std::string& what) {
  error_ = absl::FailedPreconditionError(absl::StrCat(
      "state.bin is not a valid snapshot-agent key-value state: ", what));
  return error_;
}

absl::Status StateDecoder::Feed(absl::string_view data) {
  if (!error_.ok()) return error_;
  while (!data.empty()) {
    if (header_done_ && seen_ == expected_) {
      return Fail(absl::StrFormat("%d bytes follow the last of its %d entries",
                                  data.size(), expected_));
    }
    // Fast path: a whole entry in `data`, nothing buffered: no copy but
    // into the key and value themselves.
    if (header_done_ && buf_.empty() && data.size() >= 8) {
      const uint64_t klen = DecodeFixed32(data.data());
      const uint64_t vlen = DecodeFixed32(data.data() + 4);
      SA_RETURN_IF_ERROR(CheckSizes(klen, vlen, offset_));
      if (data.size() >= 8 + klen + vlen) {
        SA_RETURN_IF_ERROR(Entry(data.substr(8, klen), data.substr(8 + klen, vlen)));
        data.remove_prefix(8 + klen + vlen);
        offset_ += 8 + klen + vlen;
        continue;
      }
    }
    size_t need;
    if (!header_done_) {
      need = kHeaderBytes;
    } else if (buf_.size() < 8) {
      need = 8;
    } else {
      need = 8 + DecodeFixed32(buf_.data()) + DecodeFixed32(buf_.data() + 4);
    }
    size_t take = std::min(need - buf_.size(), data.size());
    buf_.append(data.data(), take);
    data.remove_prefix(take);
    offset_ += take;
    if (!header_done_) SA_RETURN_IF_ERROR(CheckMagic());
    if (buf_.size() < need) continue;

    if (!header_done_) {
      if (static_cast<uint8_t>(buf_[4]) != kVersion) {
        return Fail(absl::StrFormat("unsupported format version %d",
                                    static_cast<uint8_t>(buf_[4])));
      }
      if (buf_[5] != 0 || buf_[6] != 0 || buf_[7] != 0) {
        return Fail("the reserved bytes of its header are not zero");
      }
      expected_ = DecodeFixed64(buf_.data() + 8);
      header_done_ = true;
      buf_.clear();
      continue;
    }
    if (need == 8) {
      const uint64_t klen = DecodeFixed32(buf_.data()), vlen = DecodeFixed32(buf_.data() + 4);
      SA_RETURN_IF_ERROR(CheckSizes(klen, vlen, offset_ - 8));
      if (klen + vlen > 0) continue;  // read the body next
    }
    const size_t klen = DecodeFixed32(buf_.data());
    absl::string_view all(buf_);
    SA_RETURN_IF_ERROR(Entry(all.substr(8, klen), all.substr(8 + klen)));
    buf_.clear();
  }
  return absl::OkStatus();
}

// The sizes of the entry that starts at offset `at`.
absl::Status StateDecoder::CheckSizes(uint64_t klen, uint64_t vlen, uint64_t at) {
  if (klen == 0 || klen > kMaxKeyBytes || vlen > kMaxValueBytes) {
    return Fail(absl::StrFormat(
        "entry %d at offset %d has an impossible size (key %d, value %d "
        "bytes)",
        seen_ + 1, at, klen, vlen));
  }
  return absl::OkStatus();
}

absl::Status StateDecoder::Entry(absl::string_view key, absl::string_view value) {
  if (seen_ > 0 && key <= last_key_) {
    return Fail(absl::StrFormat(
        "entry %d is not in strictly ascending key order", seen_ + 1));
  }
  ++seen_;
  last_key_.assign(key.data(), key.size());
  if (on_entry_) on_entry_(std::string(key), std::string(value));
  return absl::OkStatus();
}

// Checks the bytes of the header seen so far against the magic, so that a
// foreign state is named as such even when it is shorter than a header.
absl::Status StateDecoder::CheckMagic() {
  if (memcmp(buf_.data(), kMagic, std::min(buf_.size(), sizeof(kMagic))) != 0) {
    return Fail(
        "it does not start with the magic bytes \"SAKV\" (is it a snapshot "
        "of another system, such as Nomad or Consul?)");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> StateDecoder::Finish() {
  if (!error_.ok()) return error_;
  if (!header_done_) {
    return Fail(absl::StrFormat("only %d bytes, shorter than its header",
                                buf_.size()));
  }
  if (seen_ != expected_ || !buf_.empty()) {
    return Fail(absl::StrFormat("it announces %d entries but ends after %d",
                                expected_, seen_));
  }
  return seen_;
}

absl::StatusOr<KvState> DecodeState(absl::string_view bytes) {
  KvState state;
  StateDecoder d([&state](std::string k, std::string v) {
    state.Put(std::move(k), std::move(v));
  });
  SA_RETURN_IF_ERROR(d.Feed(bytes));
  SA_RETURN_IF_ERROR(d.Finish().status());
  return state;
}

}  // namespace kv
}  // namespace snapshot
