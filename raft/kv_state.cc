#include "raft/kv_state.h"

#include <algorithm>
#include <cstring>

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

// An entry's serialized form.
void EncodeEntry(absl::string_view key, absl::string_view value, std::string* out) {
  PutFixed32(key.size(), out);
  PutFixed32(value.size(), out);
  out->append(key.data(), key.size());
  out->append(value.data(), value.size());
}

}  // namespace

// Consecutive entries in their serialized form, in key order; never empty
// once part of a state.
struct Leaf {
  std::string bytes;
  std::vector<uint32_t> starts;  // where each entry starts in `bytes`

  size_t size() const { return starts.size(); }
  // Serialized size of entry i.
  size_t EntrySize(size_t i) const {
    return (i + 1 < size() ? starts[i + 1] : bytes.size()) - starts[i];
  }
  absl::string_view Key(size_t i) const {
    const char* p = bytes.data() + starts[i];
    return absl::string_view(p + 8, DecodeFixed32(p));
  }
  absl::string_view Value(size_t i) const {
    const char* p = bytes.data() + starts[i];
    return absl::string_view(p + 8 + DecodeFixed32(p), DecodeFixed32(p + 4));
  }
  // The first entry whose key is not less than `key`.
  size_t LowerBound(absl::string_view key) const {
    size_t lo = 0, hi = size();
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (Key(mid) < key) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }
  // Replaces the `remove` entries from `i` with the serialized `entry`
  // (none when empty).
  void Replace(size_t i, size_t remove, absl::string_view entry) {
    const size_t from = i < size() ? starts[i] : bytes.size();
    const size_t to = i + remove < size() ? starts[i + remove] : bytes.size();
    bytes.replace(from, to - from, entry.data(), entry.size());
    starts.erase(starts.begin() + i, starts.begin() + i + remove);
    if (!entry.empty()) starts.insert(starts.begin() + i++, from);
    // Offsets wrap modulo 2^32 when the entry shrank: still exact.
    const uint32_t delta = static_cast<uint32_t>(entry.size() - (to - from));
    for (; i < size(); ++i) starts[i] += delta;
  }
  // Moves the entries from `i` on into a new leaf.
  std::shared_ptr<Leaf> SplitOff(size_t i) {
    auto right = std::make_shared<Leaf>();
    const uint32_t at = starts[i];
    right->bytes.assign(bytes, at, std::string::npos);
    for (size_t j = i; j < size(); ++j) right->starts.push_back(starts[j] - at);
    bytes.resize(at);
    bytes.shrink_to_fit();
    starts.resize(i);
    starts.shrink_to_fit();
    return right;
  }
  // Appends the entries of `other`.
  void Absorb(const Leaf& other) {
    const uint32_t at = bytes.size();
    bytes += other.bytes;
    for (uint32_t s : other.starts) starts.push_back(at + s);
  }
};

struct Branch {
  std::vector<std::shared_ptr<Leaf>> leaves;  // none empty; a branch is never empty
};

namespace {

absl::string_view FirstKey(const Branch& b) { return b.leaves.front()->Key(0); }

// Where a key is, or would be inserted.
struct Position {
  size_t branch = 0, leaf = 0, entry = 0;
  bool found = false;
};

// The last element of `v` whose first key is not greater than `key` (the
// first element when none is): a binary search.
template <typename V, typename FirstKeyFn>
size_t Floor(const V& v, absl::string_view key, FirstKeyFn first_key) {
  size_t lo = 0, hi = v.size();  // the first element above key is in [lo, hi]
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (first_key(*v[mid]) <= key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo == 0 ? 0 : lo - 1;
}

// Locates `key` in non-empty `branches`.
template <typename BranchPtr>
Position Locate(const std::vector<BranchPtr>& branches, absl::string_view key) {
  Position p;
  p.branch = Floor(branches, key, [](const Branch& b) { return FirstKey(b); });
  const Branch& b = *branches[p.branch];
  p.leaf = Floor(b.leaves, key, [](const Leaf& l) { return l.Key(0); });
  const Leaf& l = *b.leaves[p.leaf];
  p.entry = l.LowerBound(key);
  p.found = p.entry < l.size() && l.Key(p.entry) == key;
  return p;
}

template <typename BranchPtr>
std::optional<std::string> GetIn(const std::vector<BranchPtr>& branches,
                                 absl::string_view key) {
  if (branches.empty()) return std::nullopt;
  const Position p = Locate(branches, key);
  if (!p.found) return std::nullopt;
  return std::string(branches[p.branch]->leaves[p.leaf]->Value(p.entry));
}

// Makes `ptr` the only owner of its object (copy-on-write: a view holds
// another reference).
template <typename T>
T& Unshare(std::shared_ptr<T>& ptr) {
  if (ptr.use_count() > 1) ptr = std::make_shared<T>(*ptr);
  return *ptr;
}

// Splits leaf `i` of `b` (unshared) while it is oversized, at the entry
// boundary nearest its middle (a large entry among small ones ends in a
// leaf of its own).
void SplitLeaf(Branch& b, size_t i) {
  Leaf& l = *b.leaves[i];
  if (l.bytes.size() <= kLeafBytes || l.size() == 1) return;
  size_t at = std::lower_bound(l.starts.begin() + 1, l.starts.end(),
                               static_cast<uint32_t>(l.bytes.size() / 2)) -
              l.starts.begin();
  if (at == l.size()) at = l.size() - 1;
  b.leaves.insert(b.leaves.begin() + i + 1, l.SplitOff(at));
  SplitLeaf(b, i + 1);
  SplitLeaf(b, i);
}

// Restores the shape after a change to the leaf at `p` (unshared, as is
// its branch): an empty leaf or branch goes, an oversized leaf or branch
// splits, a small leaf absorbs the next one when both fit in a leaf.
void Rebalance(std::vector<std::shared_ptr<Branch>>& branches, const Position& p) {
  Branch& b = *branches[p.branch];
  Leaf& l = *b.leaves[p.leaf];
  if (l.size() == 0) {
    b.leaves.erase(b.leaves.begin() + p.leaf);
    if (b.leaves.empty()) branches.erase(branches.begin() + p.branch);
    return;
  }
  if (l.bytes.size() > kLeafBytes) {
    SplitLeaf(b, p.leaf);
  } else if (l.bytes.size() < kLeafBytes / 4 && p.leaf + 1 < b.leaves.size() &&
             l.bytes.size() + b.leaves[p.leaf + 1]->bytes.size() <= kLeafBytes) {
    l.Absorb(*b.leaves[p.leaf + 1]);
    b.leaves.erase(b.leaves.begin() + p.leaf + 1);
  }
  if (b.leaves.size() > kBranchLeaves) {
    auto right = std::make_shared<Branch>();
    const size_t half = b.leaves.size() / 2;
    right->leaves.assign(b.leaves.begin() + half, b.leaves.end());
    b.leaves.resize(half);
    branches.insert(branches.begin() + p.branch + 1, std::move(right));
  }
}

// Serializes a view: its header, then its leaves' bytes as they are.
class ViewSource : public ByteSource {
 public:
  ViewSource(std::vector<std::shared_ptr<const Branch>> branches, uint64_t count)
      : branches_(std::move(branches)), header_(EncodeStateHeader(count)) {
    piece_ = header_;
  }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t written = 0;
    while (written < n) {
      if (piece_.empty() && !Advance()) break;
      const size_t k = std::min(n - written, piece_.size());
      memcpy(buf + written, piece_.data(), k);
      written += k;
      piece_.remove_prefix(k);
    }
    return written;
  }

  // The rest of the serialized form a piece at a time, without copying: the
  // header (`stable` false), then each leaf's entries (`stable` true: valid
  // while the view lives). False at the end. Not mixed with Read.
  bool NextPiece(absl::string_view* piece, bool* stable) {
    if (piece_.empty() && !Advance()) return false;
    *piece = piece_;
    *stable = stable_;
    piece_ = absl::string_view();
    return true;
  }

 private:
  // Moves to the next leaf; false when none is left.
  bool Advance() {
    if (branch_ == branches_.size()) return false;
    piece_ = branches_[branch_]->leaves[leaf_]->bytes;
    stable_ = true;
    if (++leaf_ == branches_[branch_]->leaves.size()) {
      leaf_ = 0;
      ++branch_;
    }
    return true;
  }

  const std::vector<std::shared_ptr<const Branch>> branches_;  // keep the leaves alive
  const std::string header_;
  absl::string_view piece_;  // what is left of the current piece
  bool stable_ = false;
  size_t branch_ = 0, leaf_ = 0;  // the next leaf
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
  return GetIn(branches_, key);
}

ListPage StateView::List(absl::string_view prefix,
                        absl::string_view start_after, size_t limit,
                        uint64_t max_bytes) const {
  ListPage page;
  if (limit == 0 || branches_.empty()) return page;
  // From the first key after both the prefix start and start_after: only
  // the entries of the page are touched.
  std::string from(prefix);
  if (!start_after.empty() && start_after >= prefix) {
    from = std::string(start_after);
    from.push_back('\0');  // the smallest key greater than start_after
  }
  Position p = Locate(branches_, from);
  uint64_t bytes = 0;
  for (size_t b = p.branch; b < branches_.size(); ++b) {
    const auto& leaves = branches_[b]->leaves;
    for (size_t l = b == p.branch ? p.leaf : 0; l < leaves.size(); ++l) {
      const Leaf& leaf = *leaves[l];
      for (size_t e = b == p.branch && l == p.leaf ? p.entry : 0; e < leaf.size(); ++e) {
        const absl::string_view key = leaf.Key(e);
        if (!absl::StartsWith(key, prefix)) return page;
        if (page.entries.size() >= limit || (bytes >= max_bytes && !page.entries.empty())) {
          page.more = true;
          return page;
        }
        const absl::string_view value = leaf.Value(e);
        bytes += key.size() + value.size();
        page.entries.emplace_back(std::string(key), std::string(value));
      }
    }
  }
  return page;
}

std::unique_ptr<ByteSource> StateView::NewSource() const {
  return std::make_unique<ViewSource>(branches_, count_);
}

void StateView::ForEachPiece(
    const std::function<void(absl::string_view piece, bool stable)>& fn) const {
  ViewSource src(branches_, count_);
  absl::string_view piece;
  bool stable;
  while (src.NextPiece(&piece, &stable)) fn(piece, stable);
}

void KvState::Put(std::string key, std::string value) {
  if (branches_.empty()) return Append(key, value);
  const Position p = Locate(branches_, key);
  Leaf& l = Unshare(Unshare(branches_[p.branch]).leaves[p.leaf]);
  std::string entry;
  EncodeEntry(key, value, &entry);
  if (p.found) {
    bytes_ -= l.EntrySize(p.entry);
  } else {
    ++count_;
  }
  bytes_ += entry.size();
  l.Replace(p.entry, p.found ? 1 : 0, entry);
  Rebalance(branches_, p);
}

void KvState::Append(absl::string_view key, absl::string_view value) {
  const uint64_t n = EntryBytes(key.size(), value.size());
  Leaf* leaf = nullptr;
  if (!branches_.empty()) {
    Branch& b = Unshare(branches_.back());
    const Leaf& last = *b.leaves.back();
    if (last.bytes.size() + n <= kLeafBytes) {
      leaf = &Unshare(b.leaves.back());
    } else if (last.bytes.capacity() > last.bytes.size() + last.bytes.size() / 8) {
      // Closed for good: give back what was reserved for it.
      Leaf& closing = Unshare(b.leaves.back());
      closing.bytes.shrink_to_fit();
      closing.starts.shrink_to_fit();
    }
  }
  if (leaf == nullptr) {
    if (branches_.empty() || branches_.back()->leaves.size() >= kBranchLeaves) {
      branches_.push_back(std::make_shared<Branch>());
    }
    auto fresh = std::make_shared<Leaf>();
    fresh->bytes.reserve(std::max<uint64_t>(n, kLeafBytes));
    leaf = fresh.get();
    branches_.back()->leaves.push_back(std::move(fresh));
  }
  leaf->starts.push_back(leaf->bytes.size());
  EncodeEntry(key, value, &leaf->bytes);
  ++count_;
  bytes_ += n;
}

bool KvState::Delete(const std::string& key) {
  if (branches_.empty()) return false;
  const Position p = Locate(branches_, key);
  if (!p.found) return false;
  Leaf& l = Unshare(Unshare(branches_[p.branch]).leaves[p.leaf]);
  bytes_ -= l.EntrySize(p.entry);
  --count_;
  l.Replace(p.entry, 1, absl::string_view());
  Rebalance(branches_, p);
  return true;
}

std::optional<std::string> KvState::Get(absl::string_view key) const {
  return GetIn(branches_, key);
}

StateView KvState::View() const {
  StateView v;
  v.branches_.assign(branches_.begin(), branches_.end());
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
  if (on_entry_) on_entry_(key, value);
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
  StateDecoder d([&state](absl::string_view k, absl::string_view v) { state.Append(k, v); });
  SA_RETURN_IF_ERROR(d.Feed(bytes));
  SA_RETURN_IF_ERROR(d.Finish().status());
  return state;
}

}  // namespace kv
}  // namespace snapshot
