// snapshotctl: the command-line client of snapshot-agent.
//
// Commands that need no agent work offline (inspect). See kUsage.
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "archive/archive.h"
#include "client/exit_codes.h"

namespace snapshot {
namespace {

constexpr char kUsage[] = R"(snapshotctl: take, verify, restore and inspect Raft snapshots

Usage:
  snapshotctl inspect FILE [--json]
  snapshotctl help

Commands:
  inspect FILE   Check an archive offline, without any agent: decompress it,
                 verify every SHA-256 in SHA256SUMS, the gzip CRC, the tar
                 structure and that meta.json's Size matches state.bin; then
                 print its metadata (ID, index, term, version, state size,
                 configuration), the archive size and its checksum
                 ("sha-256=" + base64 of SHA-256 over the file's bytes).
                 --json prints one JSON object with the keys id, index, term,
                 version, size (state bytes), configuration_index, servers,
                 archive_size, checksum, state_sha256, meta_sha256.

Exit codes:
  0  success
  1  other error
  2  usage error (unknown command or flag, missing argument)
  3  the archive is corrupt, truncated or not a snapshot archive
  4  the agent is unreachable or did not answer in time (retry later)
  5  authentication or permission denied
  6  wrong node or state (e.g. the node is not the leader)
  7  a size limit was exceeded
  8  a local file could not be read or written

Errors are one line on stderr: "snapshotctl: COMMAND: what went wrong".
)";

// Parsed command line: positional arguments and --flags (--name=value,
// --name value for flags that take a value, or --name for booleans).
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
};

absl::StatusOr<Args> ParseArgs(int argc, char** argv,
                               const std::vector<std::string>& bool_flags,
                               const std::vector<std::string>& value_flags) {
  Args a;
  auto known = [](const std::vector<std::string>& v, const std::string& f) {
    return std::find(v.begin(), v.end(), f) != v.end();
  };
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      a.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    size_t eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (known(bool_flags, name)) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      }
      a.flags[name] = has_value ? value : "true";
    } else if (known(value_flags, name)) {
      if (!has_value) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(
              absl::StrCat("--", name, " needs a value"));
        }
        value = argv[++i];
      }
      a.flags[name] = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
  }
  return a;
}

const char* SuffrageName(int64_t s) {
  switch (s) {
    case 0:
      return "voter";
    case 1:
      return "nonvoter";
    case 2:
      return "staging";
    default:
      return "unknown";
  }
}

nlohmann::ordered_json InfoJson(const ArchiveInfo& info) {
  nlohmann::ordered_json j;
  j["id"] = info.meta.id;
  j["index"] = info.meta.index;
  j["term"] = info.meta.term;
  j["version"] = info.meta.version;
  j["size"] = info.meta.size;
  j["configuration_index"] = info.meta.configuration_index;
  j["servers"] = nlohmann::ordered_json::array();
  for (const Server& s : info.meta.servers) {
    j["servers"].push_back({{"id", s.id},
                            {"address", s.address},
                            {"suffrage", SuffrageName(s.suffrage)}});
  }
  j["archive_size"] = info.archive_size;
  j["checksum"] = info.checksum;
  j["state_sha256"] = HexLower(info.state_sha256);
  j["meta_sha256"] = HexLower(info.meta_sha256);
  return j;
}

void PrintInfo(const std::string& file, const ArchiveInfo& info) {
  const SnapshotMeta& m = info.meta;
  absl::PrintF("File:                %s\n", file);
  absl::PrintF("Archive size:        %d bytes\n", info.archive_size);
  absl::PrintF("Checksum:            %s\n", info.checksum);
  absl::PrintF("ID:                  %s\n", m.id);
  absl::PrintF("Index:               %d\n", m.index);
  absl::PrintF("Term:                %d\n", m.term);
  absl::PrintF("Version:             %d\n", m.version);
  absl::PrintF("State size:          %d bytes\n", m.size);
  absl::PrintF("State SHA-256:       %s\n", HexLower(info.state_sha256));
  absl::PrintF("Configuration index: %d\n", m.configuration_index);
  if (m.servers.empty()) absl::PrintF("Servers:             (none)\n");
  for (size_t i = 0; i < m.servers.size(); ++i) {
    absl::PrintF("%s%s at %s (%s)\n",
                 i == 0 ? "Servers:             " : "                     ",
                 m.servers[i].id, m.servers[i].address,
                 SuffrageName(m.servers[i].suffrage));
  }
}

int Fail(absl::string_view command, const absl::Status& s, int code) {
  std::cerr << "snapshotctl: " << command << ": " << s.message() << "\n";
  return code;
}

int Inspect(int argc, char** argv) {
  auto args = ParseArgs(argc, argv, {"json"}, {});
  if (!args.ok()) return Fail("inspect", args.status(), kExitUsage);
  if (args->positional.size() != 1) {
    return Fail("inspect",
                absl::InvalidArgumentError("expects exactly one FILE"),
                kExitUsage);
  }
  const std::string& file = args->positional[0];
  auto src = FileSource::Open(file);
  if (!src.ok()) return Fail("inspect", src.status(), kExitLocalFile);
  auto info = ReadArchive(&*src, /*state_sink=*/nullptr);
  if (!info.ok()) {
    return Fail("inspect",
                absl::Status(info.status().code(),
                             absl::StrCat(file, ": ", info.status().message())),
                ExitCodeFor(info.status()));
  }
  if (args->flags.count("json") && args->flags["json"] == "true") {
    nlohmann::ordered_json j = InfoJson(*info);
    j["file"] = file;
    std::cout << j.dump() << "\n";
  } else {
    PrintInfo(file, *info);
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  std::string cmd = argv[1];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return kExitOk;
  }
  if (cmd == "inspect") return Inspect(argc - 2, argv + 2);
  std::cerr << "snapshotctl: unknown command \"" << cmd
            << "\" (see snapshotctl --help)\n";
  return kExitUsage;
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) { return snapshot::Main(argc, argv); }
