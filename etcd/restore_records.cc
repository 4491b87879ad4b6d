#include "etcd/restore_records.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/atomic_file.h"
#include "base/io.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"

namespace snapshot {

const char* PhaseName(RestorePhase p) {
  switch (p) {
    case RestorePhase::kPrepared:
      return "prepared";
    case RestorePhase::kStopped:
      return "stopped";
    case RestorePhase::kCommitting:
      return "committing";
    case RestorePhase::kCommitted:
      return "committed";
  }
  return "prepared";
}

absl::StatusOr<RestorePhase> ParsePhase(absl::string_view name) {
  for (RestorePhase p : {RestorePhase::kPrepared, RestorePhase::kStopped,
                         RestorePhase::kCommitting, RestorePhase::kCommitted}) {
    if (name == PhaseName(p)) return p;
  }
  return absl::DataLossError(absl::StrCat("unknown restore phase \"", name, "\""));
}

const char* StepName(RestoreStep s) {
  switch (s) {
    case RestoreStep::kStop:
      return "Stop";
    case RestoreStep::kCommit:
      return "Commit";
    case RestoreStep::kAbort:
      return "Abort";
    case RestoreStep::kFinalize:
      return "Finalize";
  }
  return "Stop";
}

std::string RestoreRecords::Path(const std::string& id, const char* kind) const {
  return absl::StrCat(dir_, "/", id, ".", kind);
}

absl::Status RestoreRecords::Save(const RestoreRecord& r) {
  nlohmann::json j = {{"id", r.id}, {"phase", PhaseName(r.phase)}, {"coordinator", r.coordinator}};
  return WriteFileAtomically(Path(r.id, "state"), j.dump() + "\n", 0600, env_);
}

absl::StatusOr<RestoreRecord> RestoreRecords::Load(const std::string& id) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(Path(id, "state")));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j["id"].is_string() || !j["phase"].is_string() ||
      !j["coordinator"].is_string()) {
    return absl::DataLossError(absl::StrCat("unreadable restore record ", Path(id, "state")));
  }
  RestoreRecord r;
  r.id = j["id"];
  SA_ASSIGN_OR_RETURN(r.phase, ParsePhase(j["phase"].get<std::string>()));
  r.coordinator = j["coordinator"];
  return r;
}

void RestoreRecords::Forget(const std::string& id) {
  env_->Unlink(Path(id, "state"));
  env_->Unlink(Path(id, "etcdctl.log"));
  SyncDirectoryOf(Path(id, "state"), env_).IgnoreError();
}

absl::Status RestoreRecords::SaveDecision(const RestoreDecisionRecord& d, bool* decided) {
  nlohmann::json j = {{"id", d.id}, {"members", d.members}, {"revision", d.revision}};
  const std::string path = Path(d.id, "decision");
  absl::Status s = WriteFileAtomically(path, j.dump() + "\n", 0600, env_);
  *decided = s.ok() || HasDecision(d.id);
  // Renamed but not known durable: retry the directory's fsync (never undo).
  absl::Status synced = s;
  for (int attempt = 1; !synced.ok() && *decided && attempt <= 5; ++attempt) {
    absl::SleepFor(absl::Milliseconds(100 * attempt));
    synced = SyncDirectoryOf(path, env_);
  }
  return synced.ok() ? synced : s;
}

absl::StatusOr<RestoreDecisionRecord> RestoreRecords::LoadDecision(const std::string& id) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(Path(id, "decision")));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j["members"].is_array()) {
    return absl::DataLossError(absl::StrCat("unreadable restore decision ", Path(id, "decision")));
  }
  RestoreDecisionRecord d;
  d.id = id;
  for (const auto& m : j["members"]) {
    if (!m.is_string()) {
      return absl::DataLossError(absl::StrCat("unreadable restore decision ", Path(id, "decision")));
    }
    d.members.push_back(m.get<std::string>());
  }
  if (j["revision"].is_number_integer()) d.revision = j["revision"];
  return d;
}

bool RestoreRecords::HasDecision(const std::string& id) const {
  struct stat st;
  return lstat(Path(id, "decision").c_str(), &st) == 0;
}

void RestoreRecords::RemoveDecision(const std::string& id) {
  env_->Unlink(Path(id, "decision"));
  SyncDirectoryOf(Path(id, "decision"), env_).IgnoreError();
}

std::vector<std::string> RestoreRecords::WithSuffix(absl::string_view suffix) const {
  std::vector<std::string> ids;
  for (const std::string& file : ListDir(dir_).value_or(std::vector<std::string>{})) {
    absl::string_view name = file;
    if (absl::ConsumeSuffix(&name, suffix) && !name.empty()) ids.emplace_back(name);
  }
  return ids;
}

std::vector<std::string> RestoreRecords::Participating() const { return WithSuffix(".state"); }

std::vector<std::string> RestoreRecords::Decided() const { return WithSuffix(".decision"); }

}  // namespace snapshot
