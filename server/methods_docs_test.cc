// Holds the method table (server/methods.cc), docs/api.md's Roles table and
// `snapshot-agent --help` together, so that none of them can drift.
#include <stdio.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "server/methods.h"

namespace snapshot {
namespace {

const char* g_agent = nullptr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string RunHelp() {
  std::string out;
  FILE* p = popen(absl::StrCat(g_agent, " --help 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(MethodsDocs, ApiMdRolesTableIsTheCodesTable) {
  const std::string doc = ReadFile("docs/api.md");
  const size_t start = doc.find("<!-- roles:start -->");
  const size_t end = doc.find("<!-- roles:end -->");
  ASSERT_NE(start, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::map<std::string, std::pair<std::string, std::string>> documented;
  for (absl::string_view line : absl::StrSplit(doc.substr(start, end - start), '\n')) {
    if (!absl::ConsumePrefix(&line, "| `")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    ASSERT_GE(cells.size(), 3u) << line;
    std::string method(absl::StripSuffix(absl::StripAsciiWhitespace(cells[0]), "`"));
    documented[absl::StrCat("/", method)] = {std::string(absl::StripAsciiWhitespace(cells[1])),
                                             std::string(absl::StripAsciiWhitespace(cells[2]))};
  }
  std::map<std::string, std::pair<std::string, std::string>> code;
  for (const MethodInfo& m : AllMethods()) {
    code[m.full_name] = {RoleName(m.role), m.bytes == Direction::kIn ? "in" : "out"};
  }
  EXPECT_EQ(documented, code);
}

TEST(MethodsDocs, TokenFileHelpNamesTheReadMethods) {
  std::string help = RunHelp();
  // Flag help is wrapped over lines: join them.
  std::string flat;
  for (absl::string_view l : absl::StrSplit(help, '\n')) {
    absl::StrAppend(&flat, absl::StripAsciiWhitespace(l), " ");
  }
  const size_t at = flat.find("--token_file (");  // the flag's own entry
  ASSERT_NE(at, std::string::npos) << help;
  const size_t read = flat.find("read: ", at);
  const size_t admin = flat.find("; admin: everything", read);
  ASSERT_NE(read, std::string::npos);
  ASSERT_NE(admin, std::string::npos);
  std::set<std::string> in_help;
  for (absl::string_view name : absl::StrSplit(flat.substr(read + 6, admin - read - 6), ',')) {
    in_help.insert(std::string(absl::StripAsciiWhitespace(name)));
  }
  std::set<std::string> read_methods;
  for (const MethodInfo& m : AllMethods()) {
    if (m.role == Permission::kRead) read_methods.insert(m.name);
  }
  EXPECT_EQ(in_help, read_methods);
}

}  // namespace
}  // namespace snapshot

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH_TO_SNAPSHOT_AGENT\n", argv[0]);
    return 2;
  }
  snapshot::g_agent = argv[1];
  return RUN_ALL_TESTS();
}
