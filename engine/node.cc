#include "engine/node.h"

namespace snapshot {

const char* RoleName(Role r) {
  switch (r) {
    case Role::kFollower:
      return "follower";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
    case Role::kUnavailable:
      break;
  }
  return "unavailable";
}

}  // namespace snapshot
