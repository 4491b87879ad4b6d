// Unit tests of the key-value state, its serialized form, the log commands
// and the state machine (no Raft involved).
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "base/coding.h"
#include "raft/command.h"
#include "raft/kv_fsm.h"
#include "raft/kv_state.h"
#include "raft/testing/kv_state_source.h"

namespace snapshot {
namespace kv {
namespace {

std::string Serialize(const StateView& v) {
  std::string out(v.SerializedSize(), '\0');
  auto src = v.NewSource();
  size_t filled = 0;
  for (;;) {
    // Odd read sizes exercise the partial-entry path.
    size_t n = *src->Read(&out[filled], std::min<size_t>(7, out.size() - filled));
    if (n == 0) break;
    filled += n;
  }
  EXPECT_EQ(filled, out.size());
  return out;
}

TEST(KvState, SerializationIsSortedAndDeterministic) {
  KvState a, b;
  std::mt19937 rng(1);
  std::vector<std::pair<std::string, std::string>> items;
  for (int i = 0; i < 2000; ++i) {
    items.emplace_back("key/" + std::to_string(rng()), std::string(rng() % 50, 'v'));
  }
  for (const auto& [k, v] : items) a.Put(k, v);
  std::shuffle(items.begin(), items.end(), rng);
  for (const auto& [k, v] : items) b.Put(k, v);
  std::string sa = Serialize(a.View()), sb = Serialize(b.View());
  EXPECT_EQ(sa, sb);
  EXPECT_EQ(sa.size(), a.SerializedSize());
  EXPECT_EQ(sa.substr(0, 4), "SAKV");

  auto decoded = DecodeState(sa);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->count(), a.count());
  EXPECT_EQ(Serialize(decoded->View()), sa);
}

TEST(KvState, ViewIsImmutableWhileStateChanges) {
  KvState s;
  s.Put("a", "1");
  s.Put("b", "2");
  StateView v = s.View();
  std::string before = Serialize(v);
  s.Put("a", "changed");
  s.Delete("b");
  s.Put("c", "3");
  EXPECT_EQ(Serialize(v), before);
  EXPECT_EQ(*v.Get("a"), "1");
  EXPECT_EQ(*s.Get("a"), "changed");
  EXPECT_FALSE(s.Get("b").has_value());
  EXPECT_EQ(s.count(), 2u);
}

// The serialized form of a model map.
std::string SerializeModel(const std::map<std::string, std::string>& m) {
  std::string out = EncodeStateHeader(m.size());
  for (const auto& [k, v] : m) {
    PutFixed32(k.size(), &out);
    PutFixed32(v.size(), &out);
    out += k;
    out += v;
  }
  return out;
}

// Random puts (tiny to leaf-sized and larger values), replacements and
// deletes, checked against a std::map after every step: contents, sizes,
// order, lookups and listings, with views captured along the way that must
// keep their contents while leaves and branches split, merge and go.
TEST(KvState, MatchesAnOrderedMapThroughSplitsMergesAndViews) {
  std::mt19937 rng(7);
  KvState s;
  std::map<std::string, std::string> model;
  std::vector<std::pair<StateView, std::string>> views;
  auto value = [&rng]() {
    const uint32_t r = rng() % 100;
    const size_t n = r < 60 ? rng() % 40 : r < 95 ? rng() % 3000 : r < 99 ? kLeafBytes + rng() % 5000 : 200000;
    return std::string(n, static_cast<char>('a' + rng() % 26));
  };
  for (int step = 0; step < 30000; ++step) {
    // A key space small enough for replacements and deletes to hit.
    const std::string key = absl::StrFormat("k%05d", static_cast<int>(rng() % 4000));
    const uint32_t op = rng() % 10;
    if (op < 6) {
      std::string v = value();
      model[key] = v;
      s.Put(key, std::move(v));
    } else {
      EXPECT_EQ(s.Delete(key), model.erase(key) == 1) << step;
    }
    if (step % 3000 == 2999) {
      const std::string want = SerializeModel(model);
      ASSERT_EQ(s.count(), model.size());
      ASSERT_EQ(s.SerializedSize(), want.size());
      ASSERT_TRUE(Serialize(s.View()) == want) << step;
      views.emplace_back(s.View(), want);
      for (int i = 0; i < 50; ++i) {
        const std::string k = absl::StrFormat("k%05d", static_cast<int>(rng() % 4000));
        auto it = model.find(k);
        auto got = s.Get(k);
        ASSERT_EQ(got.has_value(), it != model.end()) << k;
        if (got) {
          EXPECT_TRUE(*got == it->second) << k;
        }
      }
      ListPage page = s.View().List("k01", "k0150", 30, 1 << 30);
      auto it = model.upper_bound("k0150");
      for (const auto& [k, v] : page.entries) {
        ASSERT_TRUE(it != model.end() && it->first == k) << k;
        EXPECT_TRUE(it->second == v);
        ++it;
      }
      EXPECT_EQ(page.more, it != model.end() && absl::StartsWith(it->first, "k01"));
    }
  }
  for (const auto& [view, want] : views) EXPECT_TRUE(Serialize(view) == want);
  // Deleting everything leaves an empty state that grows again.
  for (const auto& [k, v] : model) ASSERT_TRUE(s.Delete(k));
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(Serialize(s.View()), EncodeStateHeader(0));
  s.Put("again", "1");
  EXPECT_EQ(*s.Get("again"), "1");
}

// Enough leaves for branches to split (kBranchLeaves), then to empty out
// and go, in random order, with a view alive across it all.
TEST(KvState, BranchesSplitAndGo) {
  std::mt19937 rng(5);
  std::vector<int> keys(3 * kBranchLeaves);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<int>(i);
  std::shuffle(keys.begin(), keys.end(), rng);
  KvState s;
  std::map<std::string, std::string> model;
  for (int k : keys) {  // values of half a leaf: a leaf or two each
    std::string v(kLeafBytes / 2 + rng() % 64, static_cast<char>('a' + k % 26));
    model[absl::StrFormat("b%06d", k)] = v;
    s.Put(absl::StrFormat("b%06d", k), std::move(v));
  }
  const std::string full = SerializeModel(model);
  ASSERT_TRUE(Serialize(s.View()) == full);
  StateView kept = s.View();
  std::shuffle(keys.begin(), keys.end(), rng);
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string k = absl::StrFormat("b%06d", keys[i]);
    ASSERT_TRUE(s.Delete(k)) << k;
    model.erase(k);
    if (i % 500 == 0) {
      ASSERT_TRUE(Serialize(s.View()) == SerializeModel(model)) << i;
    }
  }
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.SerializedSize(), kHeaderBytes);
  EXPECT_TRUE(Serialize(kept) == full);
}

// A state built by appending in key order (a restore, a Raft snapshot's
// load) is the same as one built by puts, and behaves as one afterwards.
TEST(KvState, AppendedStateEqualsPutState) {
  std::mt19937 rng(3);
  std::map<std::string, std::string> model;
  for (int i = 0; i < 20000; ++i) {
    const size_t n = i % 1000 == 0 ? 100000 : rng() % 200;
    model[absl::StrFormat("a/%08d", i * 7)] = std::string(n, 'x');
  }
  KvState appended;
  for (const auto& [k, v] : model) appended.Append(k, v);
  const std::string want = SerializeModel(model);
  EXPECT_TRUE(Serialize(appended.View()) == want);
  EXPECT_EQ(appended.SerializedSize(), want.size());
  // A view captured mid-build keeps its contents.
  KvState partial;
  auto it = model.begin();
  for (int i = 0; i < 500; ++i, ++it) partial.Append(it->first, it->second);
  StateView half = partial.View();
  const std::string half_bytes = Serialize(half);
  for (; it != model.end(); ++it) partial.Append(it->first, it->second);
  EXPECT_TRUE(Serialize(half) == half_bytes);
  EXPECT_TRUE(Serialize(partial.View()) == want);
  // Then it takes puts and deletes in the middle.
  appended.Put("a/00000070x", "new");
  model["a/00000070x"] = "new";
  appended.Delete("a/00000700");
  model.erase("a/00000700");
  EXPECT_TRUE(Serialize(appended.View()) == SerializeModel(model));
}

TEST(KvState, ListByPrefixInOrderWithLimit) {
  KvState s;
  for (int i = 9; i >= 0; --i) s.Put("user/" + std::to_string(i), "x");
  s.Put("users", "y");
  s.Put("other", "z");
  auto all = s.View().List("user/", "", 100, 1 << 20);
  ASSERT_EQ(all.entries.size(), 10u);
  EXPECT_FALSE(all.more);
  EXPECT_EQ(all.entries.front().first, "user/0");
  EXPECT_EQ(all.entries.back().first, "user/9");
  auto three = s.View().List("user/", "", 3, 1 << 20);
  ASSERT_EQ(three.entries.size(), 3u);
  EXPECT_TRUE(three.more);
  EXPECT_EQ(three.entries[2].first, "user/2");
  EXPECT_EQ(s.View().List("", "", 100, 1 << 20).entries.size(), 12u);
}

TEST(KvState, ListPagesByBytesAndContinuesAfterTheLastKey) {
  KvState s;
  for (int i = 0; i < 50; ++i) {
    s.Put(absl::StrFormat("k/%03d", i), std::string(1000, 'v'));
  }
  s.Put("l", "outside the prefix");
  // 1005 bytes an entry: a 4000-byte budget ends after the 4th entry.
  std::vector<std::string> keys;
  std::string after;
  int pages = 0;
  for (;;) {
    ListPage page = s.View().List("k/", after, 1000, 4000);
    ++pages;
    ASSERT_FALSE(page.entries.empty());
    EXPECT_LE(page.entries.size(), 4u);
    for (auto& e : page.entries) keys.push_back(e.first);
    after = page.entries.back().first;
    if (!page.more) break;
  }
  ASSERT_EQ(keys.size(), 50u);
  EXPECT_EQ(pages, 13);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(keys[i], absl::StrFormat("k/%03d", i));
  // A single entry larger than the budget still comes, alone.
  s.Put("big", std::string(10000, 'b'));
  ListPage big = s.View().List("big", "", 10, 100);
  ASSERT_EQ(big.entries.size(), 1u);
  EXPECT_FALSE(big.more);
  // start_after before the prefix starts at the prefix.
  EXPECT_EQ(s.View().List("k/", "a", 1, 1 << 20).entries[0].first, "k/000");
}

TEST(KvState, SizeAccountingFollowsPutsAndDeletes) {
  KvState s;
  EXPECT_EQ(s.SerializedSize(), kHeaderBytes);
  s.Put("k", "12345");
  EXPECT_EQ(s.SerializedSize(), kHeaderBytes + 8 + 1 + 5);
  s.Put("k", "1");
  EXPECT_EQ(s.SerializedSize(), kHeaderBytes + 8 + 1 + 1);
  EXPECT_TRUE(s.Delete("k"));
  EXPECT_FALSE(s.Delete("k"));
  EXPECT_EQ(s.SerializedSize(), kHeaderBytes);
}

TEST(StateDecoder, RefusesOtherSystemsAndDamage) {
  KvState s;
  s.Put("a", "1");
  s.Put("b", "2");
  std::string good = Serialize(s.View());
  auto code = [](absl::string_view bytes) {
    return DecodeState(bytes).status();
  };
  // A Nomad state.bin (msgpack) is not ours.
  absl::Status nomad = code(std::string("\xdc\x00\x10\xda\x00\x40", 6));
  EXPECT_EQ(nomad.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(nomad.message().find("Nomad"), std::string::npos) << nomad;
  EXPECT_EQ(code("").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(code(good.substr(0, good.size() - 1)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(code(good + "x").code(), absl::StatusCode::kFailedPrecondition);
  std::string bad_version = good;
  bad_version[4] = 9;
  EXPECT_EQ(code(bad_version).code(), absl::StatusCode::kFailedPrecondition);
  // Keys out of order: swap the two one-byte keys.
  std::string unordered = good;
  std::swap(unordered[16 + 8], unordered[16 + 8 + 2 + 8]);
  EXPECT_NE(code(unordered).message().find("ascending"), std::string::npos);
  // An absurd length.
  std::string huge = good;
  huge[16 + 3] = 0x7f;
  EXPECT_EQ(code(huge).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(DecodeState(good).ok());
}

TEST(Command, EncodingIsPaddedAndRoundTrips) {
  Command put;
  put.type = Command::kPut;
  put.key = "k";
  put.value = "value";
  for (int len = 0; len < 20; ++len) {
    put.value = std::string(len, 'v');
    std::string e = EncodeCommand(put);
    EXPECT_EQ(e.size() % 8, 0u);
    auto d = DecodeCommand(e);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->value, put.value);
    EXPECT_EQ(d->key, "k");
  }
  Command begin;
  begin.type = Command::kRestoreBegin;
  begin.restore_id = "r1";
  begin.size = 12345;
  auto d = DecodeCommand(EncodeCommand(begin));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size, 12345u);
  Command commit;
  commit.type = Command::kRestoreCommit;
  commit.restore_id = "r1";
  commit.crc64 = 0x0123456789abcdefull;
  d = DecodeCommand(EncodeCommand(commit));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->crc64, commit.crc64);

  std::string e = EncodeCommand(put);
  EXPECT_FALSE(DecodeCommand(e.substr(0, e.size() - 8)).ok());
  std::string garbage = e;
  garbage.back() = 'x';
  EXPECT_FALSE(DecodeCommand(garbage).ok());
  EXPECT_FALSE(DecodeCommand(e + std::string(8, '\0')).ok());
  std::string unknown = e;
  unknown[0] = 99;
  EXPECT_FALSE(DecodeCommand(unknown).ok());
}

TEST(Command, ChunkSegmentsKeepRandomRunsAndDeflateTheRest) {
  std::mt19937_64 rng(5);
  std::string chunk;
  while (chunk.size() < (1 << 20)) {
    for (int i = 0; i < 40000; ++i) chunk.push_back(static_cast<char>(rng()));
    for (int i = 0; i < 5000; ++i) chunk += "key/" + std::to_string(i) + "=v;";
  }
  FastDeflater d;
  std::string enc;
  ASSERT_TRUE(EncodeChunkSegments(chunk, &d, &enc));
  EXPECT_LT(enc.size(), chunk.size() * 3 / 4);
  std::string scratch, back;
  int segments = 0;
  ASSERT_TRUE(DecodeChunkSegments(enc, chunk.size(), &scratch, [&](absl::string_view raw) {
    back.append(raw.data(), raw.size());
    ++segments;
  }));
  EXPECT_TRUE(back == chunk);
  EXPECT_GT(segments, 2);
  // A wrong total, a cut or a damaged length: refused.
  auto ignore = [](absl::string_view) {};
  EXPECT_FALSE(DecodeChunkSegments(enc, chunk.size() + 1, &scratch, ignore));
  EXPECT_FALSE(DecodeChunkSegments(enc.substr(0, enc.size() - 1), chunk.size(), &scratch, ignore));
  std::string bad = enc;
  bad[4] = '\xff';  // first stored length over its raw length
  bad[5] = '\xff';
  bad[6] = '\xff';
  EXPECT_FALSE(DecodeChunkSegments(bad, chunk.size(), &scratch, ignore));
  // Random bytes gain nothing: the chunk goes as it is.
  std::string noise;
  for (int i = 0; i < (1 << 18); ++i) noise.push_back(static_cast<char>(rng()));
  EXPECT_FALSE(EncodeChunkSegments(noise, &d, &enc));
}

std::string PutEntry(const std::string& k, const std::string& v) {
  Command c;
  c.type = Command::kPut;
  c.key = k;
  c.value = v;
  return EncodeCommand(c);
}

std::vector<std::string> RestoreEntries(const std::string& id,
                                        const std::string& state,
                                        size_t chunk) {
  std::vector<std::string> out;
  Command b;
  b.type = Command::kRestoreBegin;
  b.restore_id = id;
  b.size = state.size();
  out.push_back(EncodeCommand(b));
  for (size_t off = 0; off < state.size(); off += chunk) {
    Command c;
    c.type = Command::kRestoreChunk;
    c.restore_id = id;
    c.offset = off;
    c.data = absl::string_view(state).substr(off, chunk);
    out.push_back(EncodeCommand(c));
  }
  Command m;
  m.type = Command::kRestoreCommit;
  m.restore_id = id;
  m.crc64 = Crc64(0, state);
  out.push_back(EncodeCommand(m));
  return out;
}

TEST(KvFsm, RestoreSwapsStateAtCommitOnly) {
  KvState other;
  for (int i = 0; i < 100; ++i) other.Put("r/" + std::to_string(i), "restored");
  std::string image = Serialize(other.View());

  KvFsm fsm;
  EXPECT_EQ(fsm.Apply(PutEntry("old", "1")), kApplied);
  auto entries = RestoreEntries("id1", image, 100);
  for (size_t i = 0; i + 1 < entries.size(); ++i) {
    EXPECT_EQ(fsm.Apply(entries[i]), kApplied);
    EXPECT_EQ(*fsm.state().Get("old"), "1") << "state changed before commit";
  }
  // A duplicated chunk (a retried proposal) is applied once.
  EXPECT_EQ(fsm.Apply(entries[1]), kApplied);
  EXPECT_EQ(fsm.Apply(entries.back()), kApplied);
  EXPECT_FALSE(fsm.state().Get("old").has_value());
  EXPECT_EQ(fsm.state().count(), 100u);
  EXPECT_TRUE(fsm.RestoreCommitted("id1"));
  // A replayed commit is a no-op.
  EXPECT_EQ(fsm.Apply(PutEntry("after", "x")), kApplied);
  EXPECT_EQ(fsm.Apply(entries.back()), kApplied);
  EXPECT_TRUE(fsm.state().Get("after").has_value());
}

TEST(KvFsm, FailedCommitsChangeNothing) {
  KvFsm fsm;
  fsm.Apply(PutEntry("keep", "me"));
  // Missing chunk.
  KvState other;
  other.Put("a", "b");
  std::string image = Serialize(other.View());
  auto entries = RestoreEntries("id2", image, 5);
  entries.erase(entries.begin() + 2);
  for (size_t i = 0; i + 1 < entries.size(); ++i) fsm.Apply(entries[i]);
  EXPECT_EQ(fsm.Apply(entries.back()), kRestoreIncomplete);
  // Not a valid state, though length and hash match.
  auto bogus = RestoreEntries("id3", "not a state", 4);
  for (size_t i = 0; i + 1 < bogus.size(); ++i) fsm.Apply(bogus[i]);
  EXPECT_EQ(fsm.Apply(bogus.back()), kRestoreInvalidState);
  // Commit without begin.
  EXPECT_EQ(fsm.Apply(RestoreEntries("nope", image, 100).back()), kNoSuchRestore);
  EXPECT_EQ(*fsm.state().Get("keep"), "me");
  EXPECT_EQ(fsm.state().count(), 1u);
  EXPECT_EQ(fsm.Apply("garbage!"), kBadEntry);
}

TEST(KvFsm, ChecksumAtCommitAbortAndInvalidBytes) {
  KvState other;
  for (int i = 0; i < 50; ++i) other.Put("k/" + std::to_string(i), std::string(i, 'v'));
  const std::string image = Serialize(other.View());
  // A commit whose checksum differs changes nothing; the right one applies.
  {
    KvFsm fsm;
    auto entries = RestoreEntries("late", image, 64);
    Command m;
    m.type = Command::kRestoreCommit;
    m.restore_id = "late";
    m.crc64 = Crc64(0, "something else");
    for (size_t i = 0; i + 1 < entries.size(); ++i) ASSERT_EQ(fsm.Apply(entries[i]), kApplied);
    EXPECT_EQ(fsm.Apply(EncodeCommand(m)), kRestoreIncomplete);
    EXPECT_EQ(fsm.state().count(), 0u);
    for (size_t i = 0; i + 1 < entries.size(); ++i) ASSERT_EQ(fsm.Apply(entries[i]), kApplied);
    EXPECT_EQ(fsm.Apply(entries.back()), kApplied);
    EXPECT_EQ(fsm.state().count(), 50u);
    EXPECT_TRUE(fsm.TakeRestoreCommitted());
    EXPECT_FALSE(fsm.TakeRestoreCommitted());
  }
  // An abort drops the staging; its commit then finds nothing.
  {
    KvFsm fsm;
    fsm.Apply(PutEntry("keep", "1"));
    auto entries = RestoreEntries("gone", image, 64);
    for (size_t i = 0; i + 1 < entries.size(); ++i) fsm.Apply(entries[i]);
    Command a;
    a.type = Command::kRestoreAbort;
    a.restore_id = "gone";
    EXPECT_EQ(fsm.Apply(EncodeCommand(a)), kApplied);
    EXPECT_EQ(fsm.staging(), nullptr);
    EXPECT_EQ(fsm.Apply(entries.back()), kNoSuchRestore);
    EXPECT_EQ(*fsm.state().Get("keep"), "1");
  }
  // Bytes that are not a valid state are refused at commit (with the
  // length and digest right), and the staging is dropped.
  {
    KvFsm fsm;
    std::string broken = image;
    broken[23] = '\x7f';  // the first entry's value length: impossible
    auto entries = RestoreEntries("bad", broken, 64);
    for (size_t i = 0; i + 1 < entries.size(); ++i) EXPECT_EQ(fsm.Apply(entries[i]), kApplied);
    EXPECT_TRUE(fsm.staging()->invalid);
    EXPECT_EQ(fsm.Apply(entries.back()), kRestoreInvalidState);
    EXPECT_EQ(fsm.staging(), nullptr);
  }
}

TEST(KvFsm, StagingImageRebuildsTheExactBytesAtEveryCut) {
  KvState other;
  for (int i = 0; i < 20; ++i) other.Put("key/" + std::to_string(i), std::string(i * 3, 'x'));
  const std::string image = Serialize(other.View());
  // Cut after every byte count (inside the header, inside entries, between
  // them); the copy loaded from the image must finish the restore.
  for (size_t cut = 0; cut <= image.size(); cut += 7) {
    KvFsm fsm;
    Command b;
    b.type = Command::kRestoreBegin;
    b.restore_id = "cut";
    b.size = image.size();
    fsm.Apply(EncodeCommand(b));
    Command c;
    c.type = Command::kRestoreChunk;
    c.restore_id = "cut";
    c.data = absl::string_view(image).substr(0, cut);
    if (cut > 0) {
      ASSERT_EQ(fsm.Apply(EncodeCommand(c)), kApplied);
    }
    KvFsm copy;
    ASSERT_TRUE(copy.Load(fsm.Capture().Serialize()).ok()) << cut;
    ASSERT_NE(copy.staging(), nullptr);
    EXPECT_EQ(copy.staging()->received, cut);
    c.offset = cut;
    c.data = absl::string_view(image).substr(cut);
    if (cut < image.size()) {
      ASSERT_EQ(copy.Apply(EncodeCommand(c)), kApplied) << cut;
    }
    Command m;
    m.type = Command::kRestoreCommit;
    m.restore_id = "cut";
    m.crc64 = Crc64(0, image);
    ASSERT_EQ(copy.Apply(EncodeCommand(m)), kApplied) << cut;
    EXPECT_EQ(Serialize(copy.state().View()), image);
  }
  // An invalid staging travels as such.
  KvFsm fsm;
  auto bogus = RestoreEntries("junk", "not a state at all", 8);
  for (size_t i = 0; i + 1 < bogus.size(); ++i) fsm.Apply(bogus[i]);
  KvFsm copy;
  ASSERT_TRUE(copy.Load(fsm.Capture().Serialize()).ok());
  EXPECT_TRUE(copy.staging()->invalid);
  EXPECT_EQ(copy.Apply(bogus.back()), kRestoreInvalidState);
}

// The engine's compaction snapshot hands libraft FsmImage::Pieces instead of
// a serialized copy: the pieces must be exactly Serialize()'s bytes, refer to
// large values in place, and stay valid while the state moves on.
TEST(KvFsm, PiecesAreTheImageBytesWithLargeValuesInPlace) {
  std::mt19937_64 rng(11);
  auto bytes = [&rng](size_t n) {
    std::string v(n, '\0');
    for (auto& c : v) c = static_cast<char>(rng());
    return v;
  };
  KvState other;  // what a restore brings: small and large values
  for (size_t n : {0, 1, 100, 4095, 4096, 70000}) other.Put("r/" + std::to_string(n), bytes(n));
  const std::string image = Serialize(other.View());
  auto entries = RestoreEntries("next", image, 8 << 10);
  for (size_t staged : {size_t{0}, size_t{2}, entries.size() - 1, entries.size()}) {
    KvFsm fsm;
    for (size_t n : {0, 5, 4095, 4096, 65536, 1 << 20}) {
      ASSERT_EQ(fsm.Apply(PutEntry("k/" + std::to_string(n), bytes(n))), kApplied);
    }
    for (int i = 0; i < 3000; ++i) {  // small entries: more than one arena piece
      ASSERT_EQ(fsm.Apply(PutEntry("s/" + std::to_string(i), bytes(400))), kApplied);
    }
    for (size_t i = 0; i < staged; ++i) ASSERT_EQ(fsm.Apply(entries[i]), kApplied) << i;

    FsmImage img = fsm.Capture();
    const std::string want = img.Serialize();
    std::deque<std::string> arena;
    const std::vector<absl::string_view> pieces = img.Pieces(&arena);
    auto in_arena = [&arena](absl::string_view p) {
      for (const std::string& a : arena) {
        if (p.data() >= a.data() && p.data() < a.data() + a.size()) return true;
      }
      return false;
    };
    size_t referenced = 0, arena_bytes = 0;
    for (absl::string_view p : pieces) {
      EXPECT_FALSE(p.empty());
      if (!in_arena(p)) {
        EXPECT_GE(p.size(), 4096u);
        referenced += p.size();
      }
    }
    for (const std::string& a : arena) {
      EXPECT_LE(a.size(), size_t{1} << 20);
      arena_bytes += a.size();
    }
    EXPECT_EQ(referenced + arena_bytes, want.size()) << staged;
    // The large values of the state: the restore's once it is committed.
    EXPECT_GE(referenced, staged == entries.size() ? size_t{4096 + 70000}
                                                   : size_t{4096 + 65536 + (1 << 20)})
        << staged;

    // The state moves on (the large values replaced, deleted): the pieces
    // still hold the captured bytes.
    ASSERT_EQ(fsm.Apply(PutEntry("k/1048576", "small now")), kApplied);
    ASSERT_EQ(fsm.Apply(PutEntry("k/65536", bytes(65536))), kApplied);
    std::string got;
    for (absl::string_view p : pieces) got.append(p.data(), p.size());
    EXPECT_TRUE(got == want) << staged << ": " << got.size() << " vs " << want.size();
  }
}

TEST(KvFsm, ImageRoundTripsWithStaging) {
  KvFsm fsm;
  fsm.Apply(PutEntry("a", "1"));
  KvState other;
  other.Put("z", "26");
  std::string image = Serialize(other.View());
  auto entries = RestoreEntries("mid", image, 8);
  // Stop half-way: the staging must travel in the FSM's own snapshot.
  for (size_t i = 0; i < 3; ++i) fsm.Apply(entries[i]);
  std::string saved = fsm.Capture().Serialize();

  KvFsm copy;
  ASSERT_TRUE(copy.Load(saved).ok());
  EXPECT_EQ(*copy.state().Get("a"), "1");
  for (size_t i = 3; i < entries.size(); ++i) {
    EXPECT_EQ(copy.Apply(entries[i]), kApplied) << i;
  }
  EXPECT_EQ(*copy.state().Get("z"), "26");
  EXPECT_FALSE(copy.state().Get("a").has_value());
  EXPECT_TRUE(copy.RestoreCommitted("mid"));
  // The committed id survives another image round trip.
  KvFsm again;
  ASSERT_TRUE(again.Load(copy.Capture().Serialize()).ok());
  EXPECT_TRUE(again.RestoreCommitted("mid"));
  EXPECT_FALSE(again.Load("SAFS junk").ok());
  EXPECT_EQ(*again.state().Get("z"), "26");
}

}  // namespace
TEST(KvStateSource, GeneratesAValidStateOfTheAnnouncedSize) {
  testing::KvStateSource src(300, 1000, 7);
  StateDecoder decoder;
  std::string buf(4093, '\0');  // odd reads cross entry boundaries
  uint64_t total = 0;
  for (;;) {
    auto n = src.Read(&buf[0], buf.size());
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
    total += *n;
    ASSERT_TRUE(decoder.Feed(absl::string_view(buf.data(), *n)).ok());
  }
  EXPECT_EQ(total, src.size());
  auto count = decoder.Finish();
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 300u);
}

}  // namespace kv
}  // namespace snapshot
