// Every Nomad-made archive in ../shared/interop gives the outcome Nomad's own
// Verify gives it (expected.tsv), except small-meta-size-mismatch.snap, which
// we reject because meta.json's Size disagrees with state.bin.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "archive/archive.h"

namespace snapshot {
namespace {

constexpr char kDir[] = "external/shared/interop/";

struct Row {
  std::string file, expect;
  uint64_t index = 0, term = 0, state_size = 0;
  std::string nomad_error;
};

std::vector<Row> LoadExpected() {
  std::ifstream in(std::string(kDir) + "expected.tsv");
  EXPECT_TRUE(in.good()) << "missing " << kDir << "expected.tsv";
  std::vector<Row> rows;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() < 5) {
      ADD_FAILURE() << "malformed row: " << line;
      continue;
    }
    Row r;
    r.file = f[0];
    r.expect = f[1];
    if (r.expect == "ok") {
      EXPECT_TRUE(absl::SimpleAtoi(f[2], &r.index));
      EXPECT_TRUE(absl::SimpleAtoi(f[3], &r.term));
      EXPECT_TRUE(absl::SimpleAtoi(f[4], &r.state_size));
    }
    if (f.size() > 5) r.nomad_error = f[5];
    rows.push_back(r);
  }
  return rows;
}

// What our reader says for each corrupt fixture (the cause, in our words).
const std::map<std::string, std::string>& OurErrors() {
  static const auto* m = new std::map<std::string, std::string>{
      {"small-meta-size-mismatch.snap",
       "meta.json says the state is 1076 bytes but state.bin holds 1075"},
      {"small-trunc1.snap", "archive truncated: the gzip stream ends"},
      {"small-trunc8.snap", "archive truncated: the gzip stream ends"},
      {"small-trunc16.snap", "archive truncated"},
      {"small-trunc200.snap", "archive truncated inside state.bin after"},
      {"small-flip.snap", "invalid tar header"},
      // ISA-L decodes this damaged deflate stream (zlib refused it) into a
      // broken tar header, which the tar layer names.
      {"small-flip-early.snap", "invalid tar header"},
      {"small-bad-crc.snap", "gzip CRC mismatch"},
      {"small-extra-file.snap", "unexpected file \"nope\" in snapshot"},
      {"small-bad-sha-state.snap", "hash mismatch for state.bin"},
      {"small-bad-sha-meta.snap", "hash mismatch for meta.json"},
      {"small-missing-sha.snap", "file missing from snapshot: SHA256SUMS"},
      {"small-trailing-tar-bytes.snap",
       "trailing data after the end of the tar archive"},
      {"small-garbage-after-gzip.snap", "trailing data after the archive"},
      {"small-plain.tar", "not a gzip archive"},
  };
  return *m;
}

// sha256 of state.bin as Nomad's README records it.
const std::map<std::string, std::string>& StateHashes() {
  static const auto* m = new std::map<std::string, std::string>{
      {"small.snap",
       "ecb75b3d2af617a29c3804b4823e266bc9d073ec428b69ece2fbf660761c3eea"},
      {"small-sums-reversed.snap",
       "ecb75b3d2af617a29c3804b4823e266bc9d073ec428b69ece2fbf660761c3eea"},
      {"medium.snap",
       "84f6bfb57af7468a517d73b8612d7f35764e9c140ecda0aa9af086ac4422cb19"},
      {"empty.snap",
       "e4ff5e7d7a7f08e9800a3e25cb774533cb20040df30b6ba10f956f9acd0eb3f7"},
      {"zero-state.snap",
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
  };
  return *m;
}

TEST(Interop, EveryFixtureGivesTheExpectedOutcome) {
  std::vector<Row> rows = LoadExpected();
  ASSERT_GE(rows.size(), 20u);
  int ok = 0, rejected = 0;
  for (const Row& row : rows) {
    SCOPED_TRACE(row.file);
    auto src = FileSource::Open(kDir + row.file);
    ASSERT_TRUE(src.ok()) << src.status();
    const uint64_t file_size = src->size();
    std::string state;
    StringSink sink(&state);
    auto info = ReadArchive(&*src, &sink);
    auto our_error = OurErrors().find(row.file);
    if (row.expect == "ok" && our_error == OurErrors().end()) {
      ASSERT_TRUE(info.ok()) << info.status();
      EXPECT_EQ(info->meta.index, row.index);
      EXPECT_EQ(info->meta.term, row.term);
      EXPECT_EQ(info->meta.size, row.state_size);
      EXPECT_EQ(state.size(), row.state_size);
      EXPECT_EQ(info->archive_size, file_size);
      auto h = StateHashes().find(row.file);
      ASSERT_NE(h, StateHashes().end()) << "no known hash for " << row.file;
      EXPECT_EQ(HexLower(info->state_sha256), h->second);
      EXPECT_EQ(HexLower(Sha256Of(state)), h->second);
      ++ok;
    } else {
      ASSERT_NE(our_error, OurErrors().end())
          << "no expected message for " << row.file;
      ASSERT_FALSE(info.ok()) << "accepted; Nomad says: " << row.nomad_error;
      EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss)
          << info.status();
      EXPECT_NE(info.status().message().find(our_error->second),
                std::string::npos)
          << info.status() << "\n(Nomad: " << row.nomad_error << ")";
      ++rejected;
    }
  }
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(rejected, static_cast<int>(rows.size()) - 5);
}

TEST(Interop, SmallSnapMetadataIsReadExactly) {
  auto src = FileSource::Open(std::string(kDir) + "small.snap");
  ASSERT_TRUE(src.ok()) << src.status();
  auto info = ReadArchive(&*src, nullptr);
  ASSERT_TRUE(info.ok()) << info.status();
  const SnapshotMeta& m = info->meta;
  EXPECT_EQ(m.version, 1);
  EXPECT_EQ(m.id, "2-18-1795640819402");
  EXPECT_EQ(m.index, 18u);
  EXPECT_EQ(m.term, 2u);
  EXPECT_EQ(m.configuration_index, 1u);
  EXPECT_EQ(m.size, 1075u);
  ASSERT_EQ(m.servers.size(), 1u);
  EXPECT_EQ(m.servers[0].suffrage, 0);
  EXPECT_EQ(m.servers[0].id, "server-f6fd9a54-bcd0-1005-4499-b547214104d3");
  EXPECT_EQ(m.servers[0].address, "f6fd9a54-bcd0-1005-4499-b547214104d3");
  EXPECT_EQ(HexLower(info->meta_sha256),
            "6b98396e7f6a62f5118881e9b568771b00defc755bd168a219e284417b9f53cd");
  EXPECT_EQ(info->checksum, ChecksumString(*[] {
              std::ifstream f(std::string(kDir) + "small.snap",
                              std::ios::binary);
              std::stringstream ss;
              ss << f.rdbuf();
              return new Digest(Sha256Of(ss.str()));
            }()));
  // Our encoder writes the same meta.json bytes Nomad wrote.
  EXPECT_EQ(HexLower(Sha256Of(*EncodeMetaJson(m))),
            "6b98396e7f6a62f5118881e9b568771b00defc755bd168a219e284417b9f53cd");
}

TEST(Interop, ZeroStateSnapHasNullServers) {
  auto src = FileSource::Open(std::string(kDir) + "zero-state.snap");
  ASSERT_TRUE(src.ok()) << src.status();
  auto info = ReadArchive(&*src, nullptr);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->meta.servers.empty());
  EXPECT_EQ(info->meta.peers, std::string("\xc0"));
  EXPECT_EQ(info->meta.size, 0u);
}

}  // namespace
}  // namespace snapshot
