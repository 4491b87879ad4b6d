#include "base/version.h"

#include "absl/strings/str_cat.h"

namespace snapshot {

std::string VersionLine(const char* program) {
  return absl::StrCat(program, " ", kProjectVersion, " (git ", BuildRevision(),
                      ")");
}

}  // namespace snapshot
