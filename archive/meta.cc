#include "archive/meta.h"

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace snapshot {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

absl::Status Bad(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("invalid meta.json: ", what));
}

absl::Status GetUint(const Json& obj, const char* key, bool required,
                     uint64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Bad(absl::StrCat("field ", key, " is missing"));
    return absl::OkStatus();
  }
  if (!it->is_number_unsigned()) {
    return Bad(absl::StrCat("field ", key,
                            " must be a non-negative integer, got ",
                            it->dump()));
  }
  *out = it->get<uint64_t>();
  return absl::OkStatus();
}

absl::Status GetInt(const Json& obj, const char* key, bool required,
                    int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Bad(absl::StrCat("field ", key, " is missing"));
    return absl::OkStatus();
  }
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) {
      return Bad(absl::StrCat("field ", key, " is out of range"));
    }
    *out = static_cast<int64_t>(v);
  } else if (it->is_number_integer()) {
    *out = it->get<int64_t>();
  } else {
    return Bad(absl::StrCat("field ", key, " must be an integer, got ",
                            it->dump()));
  }
  return absl::OkStatus();
}

absl::Status GetString(const Json& obj, const char* key, bool required,
                       std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Bad(absl::StrCat("field ", key, " is missing"));
    return absl::OkStatus();
  }
  if (!it->is_string()) {
    return Bad(absl::StrCat("field ", key, " must be a string, got ",
                            it->dump()));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EncodeMetaJson(const SnapshotMeta& meta) {
  OrderedJson j;
  j["Version"] = meta.version;
  j["ID"] = meta.id;
  j["Index"] = meta.index;
  j["Term"] = meta.term;
  if (meta.peers.empty()) {
    j["Peers"] = nullptr;
  } else {
    j["Peers"] = absl::Base64Escape(meta.peers);
  }
  OrderedJson servers = nullptr;
  for (const Server& s : meta.servers) {
    OrderedJson js;
    js["Suffrage"] = s.suffrage;
    js["ID"] = s.id;
    js["Address"] = s.address;
    servers.push_back(std::move(js));
  }
  j["Configuration"]["Servers"] = std::move(servers);
  j["ConfigurationIndex"] = meta.configuration_index;
  j["Size"] = meta.size;
  if (!meta.engine.empty()) j["Engine"] = meta.engine;
  if (meta.engine == kEngineEtcd) {
    OrderedJson e;
    e["ClusterID"] = meta.etcd.cluster_id;
    e["MemberID"] = meta.etcd.member_id;
    e["MemberName"] = meta.etcd.member_name;
    e["Leader"] = meta.etcd.leader;
    e["Revision"] = meta.etcd.revision;
    e["Version"] = meta.etcd.version;
    j["Etcd"] = std::move(e);
  }
  try {
    return j.dump(-1, ' ', false, Json::error_handler_t::strict) + "\n";
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot metadata is not valid UTF-8: ", e.what()));
  }
}

absl::StatusOr<SnapshotMeta> ParseMetaJson(absl::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("not a JSON document");
  if (!j.is_object()) return Bad("not a JSON object");

  SnapshotMeta m;
  SA_RETURN_IF_ERROR(GetInt(j, "Version", true, &m.version));
  SA_RETURN_IF_ERROR(GetString(j, "ID", true, &m.id));
  SA_RETURN_IF_ERROR(GetUint(j, "Index", true, &m.index));
  SA_RETURN_IF_ERROR(GetUint(j, "Term", true, &m.term));
  SA_RETURN_IF_ERROR(GetUint(j, "Size", true, &m.size));
  SA_RETURN_IF_ERROR(
      GetUint(j, "ConfigurationIndex", false, &m.configuration_index));
  std::string peers64;
  SA_RETURN_IF_ERROR(GetString(j, "Peers", false, &peers64));
  if (!peers64.empty() && !absl::Base64Unescape(peers64, &m.peers)) {
    return Bad("field Peers is not valid base64");
  }

  SA_RETURN_IF_ERROR(GetString(j, "Engine", false, &m.engine));
  auto etcd = j.find("Etcd");
  if (etcd != j.end() && !etcd->is_null()) {
    if (!etcd->is_object()) return Bad("field Etcd must be an object");
    SA_RETURN_IF_ERROR(GetString(*etcd, "ClusterID", false, &m.etcd.cluster_id));
    SA_RETURN_IF_ERROR(GetString(*etcd, "MemberID", false, &m.etcd.member_id));
    SA_RETURN_IF_ERROR(
        GetString(*etcd, "MemberName", false, &m.etcd.member_name));
    SA_RETURN_IF_ERROR(GetInt(*etcd, "Revision", false, &m.etcd.revision));
    SA_RETURN_IF_ERROR(GetString(*etcd, "Version", false, &m.etcd.version));
    auto leader = etcd->find("Leader");
    if (leader != etcd->end() && !leader->is_null()) {
      if (!leader->is_boolean()) return Bad("field Etcd.Leader must be a boolean");
      m.etcd.leader = leader->get<bool>();
    }
  }

  auto conf = j.find("Configuration");
  if (conf != j.end() && !conf->is_null()) {
    if (!conf->is_object()) return Bad("field Configuration must be an object");
    auto servers = conf->find("Servers");
    if (servers != conf->end() && !servers->is_null()) {
      if (!servers->is_array()) {
        return Bad("field Configuration.Servers must be an array");
      }
      for (const Json& js : *servers) {
        if (!js.is_object()) {
          return Bad("Configuration.Servers entries must be objects");
        }
        Server srv;
        SA_RETURN_IF_ERROR(GetInt(js, "Suffrage", false, &srv.suffrage));
        SA_RETURN_IF_ERROR(GetString(js, "ID", false, &srv.id));
        SA_RETURN_IF_ERROR(GetString(js, "Address", false, &srv.address));
        m.servers.push_back(std::move(srv));
      }
    }
  }
  return m;
}

}  // namespace snapshot
