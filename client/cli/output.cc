#include "client/cli/output.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/sha256.h"
#include "base/utf8.h"

namespace snapshot {
namespace cli {
namespace {

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

}  // namespace

Shown FromLocal(const ArchiveInfo& info) {
  Shown s;
  s.meta = info.meta;
  s.archive_size = info.archive_size;
  s.checksum = info.checksum;
  s.state_sha256 = HexLower(info.state_sha256);
  return s;
}

Shown FromAgent(const v1::SnapshotMetadata& m, uint64_t archive_size,
                const std::string& checksum) {
  Shown s;
  s.meta = MetaFromProto(m);
  s.archive_size = archive_size;
  s.checksum = checksum;
  return s;
}

void PutBytes(Json& j, const std::string& name, const std::string& bytes) {
  if (IsValidUtf8(bytes)) {
    j[name] = bytes;
  } else {
    j[name + "_base64"] = absl::Base64Escape(bytes);
  }
}

std::string JsonLine(const Json& j) {
  // replace: never throw on a string that slipped through invalid.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void PrintJson(const Json& j) { std::cout << JsonLine(j) << "\n"; }

Json ToJson(const Shown& s) {
  const SnapshotMeta& m = s.meta;
  Json j;
  PutBytes(j, "id", m.id);
  j["index"] = m.index;
  j["term"] = m.term;
  j["version"] = m.version;
  j["size"] = m.size;
  j["configuration_index"] = m.configuration_index;
  j["servers"] = Json::array();
  for (const Server& srv : m.servers) {
    Json js;
    PutBytes(js, "id", srv.id);
    PutBytes(js, "address", srv.address);
    js["suffrage"] = SuffrageName(srv.suffrage);
    j["servers"].push_back(js);
  }
  j["archive_size"] = s.archive_size;
  j["checksum"] = s.checksum;
  if (!s.state_sha256.empty()) j["state_sha256"] = s.state_sha256;
  if (!m.engine.empty()) j["engine"] = m.engine;
  if (m.engine == kEngineEtcd) {
    j["etcd"] = {{"cluster_id", m.etcd.cluster_id},
                 {"member_id", m.etcd.member_id},
                 {"member_name", m.etcd.member_name},
                 {"leader", m.etcd.leader},
                 {"revision", m.etcd.revision},
                 {"version", m.etcd.version}};
  }
  return j;
}

void PrintShown(const Shown& s) {
  const SnapshotMeta& m = s.meta;
  absl::PrintF("Archive size:        %d bytes\n", s.archive_size);
  absl::PrintF("Checksum:            %s\n", s.checksum);
  absl::PrintF("ID:                  %s\n", m.id);
  absl::PrintF("Index:               %d\n", m.index);
  absl::PrintF("Term:                %d\n", m.term);
  absl::PrintF("Version:             %d\n", m.version);
  absl::PrintF("State size:          %d bytes\n", m.size);
  if (!s.state_sha256.empty()) {
    absl::PrintF("State SHA-256:       %s\n", s.state_sha256);
  }
  if (!m.engine.empty()) absl::PrintF("Engine:              %s\n", m.engine);
  if (m.engine == kEngineEtcd) {
    absl::PrintF("etcd cluster:        %s\n", m.etcd.cluster_id);
    absl::PrintF("etcd member:         %s (%s)%s, etcd %s\n", m.etcd.member_name,
                 m.etcd.member_id, m.etcd.leader ? ", leader" : "", m.etcd.version);
    absl::PrintF("etcd revision:       %d\n", m.etcd.revision);
  }
  absl::PrintF("Configuration index: %d\n", m.configuration_index);
  if (m.servers.empty()) absl::PrintF("Servers:             (none)\n");
  for (size_t i = 0; i < m.servers.size(); ++i) {
    absl::PrintF("%s%s at %s (%s)\n", i == 0 ? "Servers:             " : "                     ",
                 m.servers[i].id, m.servers[i].address, SuffrageName(m.servers[i].suffrage));
  }
}

Json EntryJson(const v1::CatalogEntry& e) {
  Json j;
  j["id"] = e.id();
  j["created"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(e.created_unix_ms()),
                                  absl::UTCTimeZone());
  j["origin"] = e.origin();
  j["index"] = e.metadata().index();
  j["term"] = e.metadata().term();
  j["state_size"] = e.metadata().state_size();
  j["archive_size"] = e.archive_size();
  j["checksum"] = e.checksum();
  j["state_sha256"] = e.state_sha256();
  j["engine"] = e.metadata().engine();
  if (!e.location().empty()) j["location"] = e.location();
  if (!e.cluster().empty()) j["cluster"] = e.cluster();
  return j;
}

void PrintEntry(const v1::CatalogEntry& e) {
  // Where it is, when the agent has a remote (docs/remote.md).
  std::string where;
  if (!e.location().empty() && e.location() != "local") {
    where = absl::StrCat(", ", e.location(), e.cluster().empty() ? "" : " (cluster ",
                         e.cluster(), e.cluster().empty() ? "" : ")");
  }
  absl::PrintF("%s  %s  %-11s index %d, term %d, %d bytes of state, %d of archive, %s%s\n", e.id(),
               absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(e.created_unix_ms()),
                                absl::UTCTimeZone()),
               e.origin(), e.metadata().index(), e.metadata().term(), e.metadata().state_size(),
               e.archive_size(), e.checksum(), where);
}

Progress::Progress(const char* verb, const char* of)
    : verb_(verb), of_(of), tty_(isatty(STDERR_FILENO)) {}

ProgressFn Progress::Fn() {
  if (!tty_) return nullptr;
  return [this](uint64_t done, uint64_t total) { Show(done, total); };
}

void Progress::Finish() {
  if (shown_) fprintf(stderr, "\r\033[K");
  shown_ = false;
}

void Progress::Show(uint64_t done, uint64_t total) {
  absl::Time now = absl::Now();
  if (now - last_ < absl::Milliseconds(100) && done != total) return;
  last_ = now;
  double secs = absl::ToDoubleSeconds(now - start_);
  double rate = secs > 0 ? done / secs : 0;
  std::string line =
      absl::StrFormat("%s %.1f MiB  %.1f MB/s", verb_, done / 1048576.0, rate / 1e6);
  if (total > 0) {
    absl::StrAppendFormat(&line, "  %d%% of %s", static_cast<int>(100.0 * done / total), of_);
    if (rate > 0 && done < total) {
      absl::StrAppendFormat(&line, "  ETA %ds", static_cast<int>((total - done) / rate + 0.5));
    }
  }
  fprintf(stderr, "\r\033[K%s", line.c_str());
  shown_ = true;
}

}  // namespace cli
}  // namespace snapshot
