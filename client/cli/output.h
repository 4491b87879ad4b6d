// What snapshotctl prints: one shape for a snapshot's metadata whether it
// comes from a local file (inspect) or from the agent (save, verify,
// restore), as text or as JSON; catalog entries; the progress line.
//
// Threading: main thread only (writes to stdout and stderr).
#ifndef SNAPSHOT_AGENT_CLIENT_CLI_OUTPUT_H_
#define SNAPSHOT_AGENT_CLIENT_CLI_OUTPUT_H_

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/time/time.h"
#include "archive/archive.h"
#include "base/snapshot_meta.h"
#include "client/client.h"

namespace snapshot {
namespace cli {

using Json = nlohmann::ordered_json;

// A snapshot as printed: its metadata and its archive.
struct Shown {
  SnapshotMeta meta;
  uint64_t archive_size = 0;
  std::string checksum;
  std::string state_sha256;  // hex; empty when not known
};

Shown FromLocal(const ArchiveInfo& info);
Shown FromAgent(const v1::SnapshotMetadata& m, uint64_t archive_size,
                const std::string& checksum);

Json ToJson(const Shown& s);
void PrintShown(const Shown& s);

Json EntryJson(const v1::CatalogEntry& e);
void PrintEntry(const v1::CatalogEntry& e);

// Sets j[name] to `bytes` when they are valid UTF-8, otherwise
// j[name + "_base64"] to their base64.
void PutBytes(Json& j, const std::string& name, const std::string& bytes);
// One line of JSON on stdout (invalid UTF-8 replaced, never thrown on).
void PrintJson(const Json& j);
std::string JsonLine(const Json& j);

// A progress line on stderr, only on a terminal, at most 10 times a second.
// Finish() (or the destructor) clears it, before the result is printed.
class Progress {
 public:
  Progress(const char* verb, const char* of);
  ~Progress() { Finish(); }
  ProgressFn Fn();
  void Finish();

 private:
  void Show(uint64_t done, uint64_t total);
  const char* verb_;
  const char* of_;
  bool tty_;
  bool shown_ = false;
  absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
};

}  // namespace cli
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_CLIENT_CLI_OUTPUT_H_
