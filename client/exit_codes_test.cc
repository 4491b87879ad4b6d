// snapshotctl's exit codes are one table (client/exit_codes.h): what
// `snapshotctl --help` prints and README.md's table must say the same, and
// the status codes map to them as documented.
#include "client/exit_codes.h"

#include <gtest/gtest.h>
#include <stdio.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace snapshot {
namespace {

const char* g_snapshotctl = nullptr;
const char* g_readme = nullptr;

// Runs of whitespace as one space.
std::string Flat(absl::string_view text) {
  std::string out;
  for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(" \n\t"), absl::SkipEmpty())) {
    absl::StrAppend(&out, out.empty() ? "" : " ", w);
  }
  return out;
}

TEST(ExitCodes, HelpPrintsTheTable) {
  std::string help;
  FILE* p = popen(absl::StrCat(g_snapshotctl, " --help").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) help.append(buf, n);
  pclose(p);
  const size_t at = help.find("Exit codes:");
  ASSERT_NE(at, std::string::npos) << help;
  const std::string section = Flat(help.substr(at));
  for (const ExitCodeDoc& d : kExitCodeTable) {
    EXPECT_NE(section.find(absl::StrCat(d.code, " ", Flat(d.meaning))), std::string::npos)
        << d.code << " is not in --help as in exit_codes.h";
  }
}

TEST(ExitCodes, ReadmeTableIsTheTable) {
  std::ifstream in(g_readme);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string readme = ss.str();
  const size_t at = readme.find("Exit codes of `snapshotctl`");
  ASSERT_NE(at, std::string::npos);
  std::vector<std::pair<int, std::string>> rows;
  for (absl::string_view line : absl::StrSplit(readme.substr(at), '\n')) {
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    int code;
    if (cells.size() == 4 && absl::SimpleAtoi(absl::StripAsciiWhitespace(cells[1]), &code)) {
      rows.emplace_back(code, std::string(absl::StripAsciiWhitespace(cells[2])));
    }
    if (!rows.empty() && line.empty()) break;  // the table's end
  }
  ASSERT_EQ(rows.size(), std::size(kExitCodeTable));
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].first, kExitCodeTable[i].code);
    EXPECT_EQ(rows[i].second, kExitCodeTable[i].meaning);
  }
}

TEST(ExitCodes, ByStatus) {
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("no snapshot")), kExitNotFound);
  EXPECT_EQ(ExitCodeFor(absl::AlreadyExistsError("FILE exists")), kExitLocalFile);
  EXPECT_EQ(ExitCodeFor(ErrnoStatus(ENOENT, "cannot open", "/x")), kExitLocalFile)
      << "a missing local file is not an unknown snapshot";
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("not the leader")), kExitPrecondition);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("role")), kExitDenied);
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 3) {
    fprintf(stderr, "usage: %s SNAPSHOTCTL README.md\n", argv[0]);
    return 2;
  }
  snapshot::g_snapshotctl = argv[1];
  snapshot::g_readme = argv[2];
  return RUN_ALL_TESTS();
}
