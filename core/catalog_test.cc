#include "core/catalog.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/testing.h"
#include "core/testing.h"

namespace snapshot {
namespace {

using testing::StringNode;

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

absl::Time Later() { return absl::Now() + absl::Seconds(10); }

TEST(Catalog, CreateListGetPinDelete) {
  testing::TempDir dir;
  auto c = Catalog::Open(dir.path() + "/cat");
  ASSERT_TRUE(c.ok()) << c.status();
  StringNode node;
  auto a = (*c)->Create(&node, TakeOptions(), SnapshotOrigin::kScheduled, Later());
  ASSERT_TRUE(a.ok()) << a.status();
  node.state = std::string(100000, 'x');
  auto b = (*c)->Create(&node, TakeOptions(), SnapshotOrigin::kPreRestore, Later());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(a->id.find("-i1-scheduled"), std::string::npos) << a->id;
  EXPECT_NE(b->id.find("-i2-pre-restore"), std::string::npos) << b->id;
  auto list = (*c)->List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, b->id);  // newest first
  EXPECT_EQ(list[0].meta.size, 100000u);
  EXPECT_EQ((*c)->TotalBytes(), a->archive_size + b->archive_size);
  // Files: the lock, two archives, two sidecars, nothing else.
  EXPECT_EQ(Files(dir.path() + "/cat").size(), 5u);
  {
    auto pin = (*c)->Acquire(a->id);
    ASSERT_TRUE(pin.ok());
    EXPECT_EQ((*c)->Delete(a->id).code(), absl::StatusCode::kFailedPrecondition);
    RetentionPolicy keep_one;
    keep_one.keep_last = 1;
    EXPECT_TRUE((*c)->ApplyRetention(keep_one).empty()) << "pinned, so kept";
  }
  RetentionPolicy keep_one;
  keep_one.keep_last = 1;
  EXPECT_EQ((*c)->ApplyRetention(keep_one), std::vector<std::string>{a->id});
  EXPECT_EQ((*c)->Get(a->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*c)->Delete(b->id).ok());
  EXPECT_EQ((*c)->Delete(b->id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Files(dir.path() + "/cat"), std::vector<std::string>{"LOCK"});
}

TEST(Catalog, OpenCleansPartsAndRebuildsTheIndexFromTheArchives) {
  testing::TempDir dir;
  const std::string d = dir.path() + "/cat";
  StringNode node;
  std::string kept_id, orphan_sidecar;
  {
    auto c = Catalog::Open(d);
    ASSERT_TRUE(c.ok());
    auto a = (*c)->Create(&node, TakeOptions(), SnapshotOrigin::kOnDemand, Later());
    ASSERT_TRUE(a.ok());
    auto b = (*c)->Create(&node, TakeOptions(), SnapshotOrigin::kScheduled, Later());
    ASSERT_TRUE(b.ok());
    kept_id = a->id;
    // Second agent on the same catalog: refused.
    EXPECT_EQ(Catalog::Open(d).status().code(), absl::StatusCode::kFailedPrecondition);
    // A crash left: a partial archive, a missing sidecar, a sidecar whose
    // archive is gone, and a stranger's file.
    std::ofstream(d + "/.deadbeef.part") << "partial";
    unlink((d + "/" + a->id + ".json").c_str());
    unlink((d + "/" + b->id + ".snap").c_str());
    orphan_sidecar = b->id + ".json";
    std::ofstream(d + "/20261126T000000.000Z-i9-scheduled.snap") << "not an archive";
  }
  auto c = Catalog::Open(d);
  ASSERT_TRUE(c.ok()) << c.status();
  auto list = (*c)->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, kept_id);
  EXPECT_EQ(list[0].origin, SnapshotOrigin::kOnDemand);
  EXPECT_EQ(list[0].meta.index, 1u);
  auto files = Files(d);
  EXPECT_EQ(std::count(files.begin(), files.end(), ".deadbeef.part"), 0);
  EXPECT_EQ(std::count(files.begin(), files.end(), orphan_sidecar), 0);
  EXPECT_EQ(std::count(files.begin(), files.end(), kept_id + ".json"), 1) << "rebuilt";
  // The stranger is left alone, out of the catalog.
  EXPECT_EQ(std::count(files.begin(), files.end(), "20261126T000000.000Z-i9-scheduled.snap"), 1);
}

TEST(Catalog, AFailedWriteLeavesNothingAndKeepsTheRest) {
  testing::TempDir dir;
  auto c = Catalog::Open(dir.path() + "/cat");
  ASSERT_TRUE(c.ok());
  StringNode node;
  ASSERT_TRUE((*c)->Create(&node, TakeOptions(), SnapshotOrigin::kScheduled, Later()).ok());
  TakeOptions bad;
  bad.compression = 42;  // refused before anything is written
  EXPECT_EQ((*c)->Create(&node, bad, SnapshotOrigin::kScheduled, Later()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*c)->List().size(), 1u);
  EXPECT_EQ(Files(dir.path() + "/cat").size(), 3u);  // LOCK, .snap, .json
}

// A safety snapshot's read-back only hashes the stored bytes again: a disk
// that keeps other bytes than it was given is still caught, and nothing
// stays; what is stored verifies completely.
TEST(Catalog, AChecksumReadBackFindsWhatTheDiskChanged) {
  testing::TempDir dir;
  testing::FaultEnv env;
  auto c = Catalog::Open(dir.path() + "/cat", {}, &env);
  ASSERT_TRUE(c.ok());
  StringNode node("test", std::string(200000, 'x'));
  TakeOptions fast;
  fast.compression = Compression::Fast();
  auto e = (*c)->Create(&node, fast, SnapshotOrigin::kPreRestore, Later(), nullptr,
                        ReadBack::kChecksum);
  ASSERT_TRUE(e.ok()) << e.status();
  auto pin = (*c)->Acquire(e->id);
  ASSERT_TRUE(pin.ok());
  auto src = (*pin)->Open();
  ASSERT_TRUE(src.ok());
  auto verified = ReadArchive(src->get(), nullptr);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->checksum, e->checksum);

  env.flip_at = (*c)->TotalBytes() + 300;  // inside the next archive
  auto bad = (*c)->Create(&node, fast, SnapshotOrigin::kPreRestore, Later(), nullptr,
                          ReadBack::kChecksum);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  EXPECT_NE(bad.status().message().find("is the disk failing?"), std::string::npos);
  EXPECT_EQ((*c)->List().size(), 1u);
  EXPECT_EQ(Files(dir.path() + "/cat").size(), 3u);  // LOCK, .snap, .json
}

// Encrypted at rest: the files are age files, read through Pin::Open; the
// index is rebuilt from them with the identity; a plain archive already
// stored stays readable; without the identity, nothing opens; an altered
// file is DATA_LOSS when read.
TEST(Catalog, EncryptedAtRest) {
  testing::TempDir dir;
  const std::string d = dir.path() + "/cat";
  auto key = age::X25519Identity::Generate();
  ASSERT_TRUE(key.ok());
  CatalogEncryption enc{{key->recipient()}, {*key}};
  StringNode node;
  node.state = std::string(200000, 'y');
  std::string plain_id, enc_id;
  {
    auto c = Catalog::Open(d);  // a plain archive, stored before encryption was turned on
    ASSERT_TRUE(c.ok());
    auto a = (*c)->Create(&node, TakeOptions(), SnapshotOrigin::kScheduled, Later());
    ASSERT_TRUE(a.ok()) << a.status();
    plain_id = a->id;
  }
  EXPECT_EQ(Catalog::Open(d, CatalogEncryption{{key->recipient()}, {}}).status().code(),
            absl::StatusCode::kInvalidArgument)
      << "recipients without an identity cannot read back what they write";
  CatalogEntry stored;
  {
    auto c = Catalog::Open(d, enc);
    ASSERT_TRUE(c.ok()) << c.status();
    auto b = (*c)->Create(&node, TakeOptions(), SnapshotOrigin::kOnDemand, Later());
    ASSERT_TRUE(b.ok()) << b.status();
    stored = *b;
    enc_id = b->id;
    EXPECT_TRUE(b->encrypted);
    const std::string file = d + "/" + enc_id + ".snap.age";
    ASSERT_TRUE(std::filesystem::exists(file));
    EXPECT_EQ(std::filesystem::file_size(file), b->stored_size);
    EXPECT_GT(b->stored_size, b->archive_size);
    EXPECT_EQ(Slurp(file).substr(0, 22), "age-encryption.org/v1\n");
    for (const std::string& id : {plain_id, enc_id}) {
      auto pin = (*c)->Acquire(id);
      ASSERT_TRUE(pin.ok()) << pin.status();
      auto src = (*pin)->Open();
      ASSERT_TRUE(src.ok()) << src.status();
      auto info = ReadArchive(src->get(), nullptr);
      ASSERT_TRUE(info.ok()) << info.status();
      EXPECT_EQ(info->checksum, (*pin)->entry().checksum) << id;
    }
  }
  // The index rebuilt from the encrypted file.
  ASSERT_EQ(unlink((d + "/" + enc_id + ".json").c_str()), 0);
  {
    auto c = Catalog::Open(d, enc);
    ASSERT_TRUE(c.ok());
    auto e = (*c)->Get(enc_id);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->checksum, stored.checksum);
    EXPECT_TRUE(e->encrypted);
    EXPECT_EQ(e->stored_size, stored.stored_size);
  }
  // Without the identity the entry is listed but cannot be read.
  {
    auto c = Catalog::Open(d);
    ASSERT_TRUE(c.ok());
    auto pin = (*c)->Acquire(enc_id);
    ASSERT_TRUE(pin.ok());
    EXPECT_EQ((*pin)->Open().status().code(), absl::StatusCode::kFailedPrecondition);
  }
  // An altered byte: DATA_LOSS when read.
  {
    const std::string file = d + "/" + enc_id + ".snap.age";
    std::string bytes = Slurp(file);
    bytes[bytes.size() - 100] ^= 1;
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
    auto c = Catalog::Open(d, enc);
    ASSERT_TRUE(c.ok());
    auto pin = (*c)->Acquire(enc_id);
    ASSERT_TRUE(pin.ok());
    auto src = (*pin)->Open();
    absl::Status s = src.ok() ? ReadArchive(src->get(), nullptr).status() : src.status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(enc_id), std::string::npos) << s;
  }
}

TEST(Catalog, EntryJsonRoundTrips) {
  CatalogEntry e;
  e.id = "20261126T130501.123Z-i7-on-demand";
  e.created = absl::FromUnixMillis(1795640701123);
  e.origin = SnapshotOrigin::kOnDemand;
  e.meta.index = 7;
  e.meta.term = 3;
  e.meta.size = 10;
  e.meta.id = "3-7-1";
  e.archive_size = 99;
  e.checksum = "sha-256=abc";
  e.state_sha256 = "00ff";
  auto back = ParseCatalogEntryJson(CatalogEntryJson(e));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, e.id);
  EXPECT_EQ(back->created, e.created);
  EXPECT_EQ(back->meta.index, 7u);
  EXPECT_EQ(back->archive_size, 99u);
  EXPECT_FALSE(ParseCatalogEntryJson("{}").ok());
  EXPECT_FALSE(ParseCatalogEntryJson("nonsense").ok());
}

}  // namespace
}  // namespace snapshot
