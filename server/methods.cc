#include "server/methods.h"

namespace snapshot {

const std::vector<MethodInfo>& AllMethods() {
  static const std::vector<MethodInfo>* table = new std::vector<MethodInfo>{
      // snapshot.v1.SnapshotService
      {"/snapshot.v1.SnapshotService/TakeSnapshot", "TakeSnapshot", Permission::kRead,
       Direction::kOut, "take"},
      {"/snapshot.v1.SnapshotService/VerifySnapshot", "VerifySnapshot", Permission::kRead,
       Direction::kIn, "verify"},
      {"/snapshot.v1.SnapshotService/RestoreSnapshot", "RestoreSnapshot", Permission::kAdmin,
       Direction::kIn, "restore"},
      {"/snapshot.v1.SnapshotService/GetStatus", "GetStatus", Permission::kRead,
       Direction::kOut, nullptr},
      {"/snapshot.v1.SnapshotService/ListSnapshots", "ListSnapshots", Permission::kRead,
       Direction::kOut, nullptr},
      {"/snapshot.v1.SnapshotService/FetchSnapshot", "FetchSnapshot", Permission::kRead,
       Direction::kOut, "fetch"},
      {"/snapshot.v1.SnapshotService/CreateSnapshot", "CreateSnapshot", Permission::kAdmin,
       Direction::kOut, nullptr},
      {"/snapshot.v1.SnapshotService/DeleteSnapshot", "DeleteSnapshot", Permission::kAdmin,
       Direction::kOut, nullptr},
      // snapshot.v1.KeyValueService
      {"/snapshot.v1.KeyValueService/Get", "Get", Permission::kRead, Direction::kOut, nullptr},
      {"/snapshot.v1.KeyValueService/List", "List", Permission::kRead, Direction::kOut, nullptr},
      {"/snapshot.v1.KeyValueService/Put", "Put", Permission::kAdmin, Direction::kIn, nullptr},
      {"/snapshot.v1.KeyValueService/Delete", "Delete", Permission::kAdmin, Direction::kIn,
       nullptr},
      // snapshot.v1.EtcdRestoreService (between agents)
      {"/snapshot.v1.EtcdRestoreService/Prepare", "Prepare", Permission::kAdmin, Direction::kIn,
       nullptr},
      {"/snapshot.v1.EtcdRestoreService/Stop", "Stop", Permission::kAdmin, Direction::kIn,
       nullptr},
      {"/snapshot.v1.EtcdRestoreService/Commit", "Commit", Permission::kAdmin, Direction::kIn,
       nullptr},
      {"/snapshot.v1.EtcdRestoreService/Abort", "Abort", Permission::kAdmin, Direction::kIn,
       nullptr},
      {"/snapshot.v1.EtcdRestoreService/Finalize", "Finalize", Permission::kAdmin,
       Direction::kIn, nullptr},
      {"/snapshot.v1.EtcdRestoreService/Decision", "Decision", Permission::kAdmin,
       Direction::kIn, nullptr},
  };
  return *table;
}

const std::vector<const char*>& TableServices() {
  static const std::vector<const char*>* services = new std::vector<const char*>{
      "snapshot.v1.SnapshotService", "snapshot.v1.KeyValueService",
      "snapshot.v1.EtcdRestoreService"};
  return *services;
}

const MethodInfo* FindMethod(absl::string_view full_name) {
  for (const MethodInfo& m : AllMethods()) {
    if (full_name == m.full_name) return &m;
  }
  return nullptr;
}

}  // namespace snapshot
