#include "store/testing/rgw_server.h"

#include <cstdlib>
#include <filesystem>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/io.h"
#include "base/subprocess.h"

namespace snapshot {
namespace testing {

absl::StatusOr<std::unique_ptr<RgwServer>> RgwServer::Start() {
  std::unique_ptr<RgwServer> s(new RgwServer());
  char tmpl[] = "/tmp/sa-rgw.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = tmpl;
  s->dir_ = dir;
  const char* script = getenv("SNAPSHOT_AGENT_RGW_SH");
  s->script_ = script != nullptr ? script : "tools/rgw.sh";
  SubprocessOptions o;
  o.argv = {"bash", s->script_, "start", dir};
  o.output_path = dir + "/start.log";
  absl::Status st = RunToCompletion(o, absl::Now() + absl::Minutes(2));
  if (!st.ok()) return st;
  absl::StatusOr<std::string> env = ReadSmallFile(dir + "/env");
  if (!env.ok()) return env.status();
  for (absl::string_view line : absl::StrSplit(*env, '\n')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (kv.first == "ENDPOINT") s->endpoint_ = kv.second;
    if (kv.first == "ACCESS_KEY") s->access_key_ = kv.second;
    if (kv.first == "SECRET_KEY") s->secret_key_ = kv.second;
    if (kv.first == "BUCKET") s->bucket_ = kv.second;
  }
  if (s->endpoint_.empty()) return absl::InternalError("rgw.sh wrote no ENDPOINT");
  return s;
}

RgwServer::~RgwServer() {
  SubprocessOptions o;
  o.argv = {"bash", script_, "stop", dir_};
  o.output_path = dir_ + "/stop.log";
  (void)RunToCompletion(o, absl::Now() + absl::Seconds(30));
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

s3::ClientOptions RgwServer::Options() const {
  s3::ClientOptions o;
  o.endpoint = endpoint_;
  o.bucket = bucket_;
  o.addressing = s3::ClientOptions::Addressing::kPath;
  o.first_backoff = absl::Milliseconds(20);
  o.max_backoff = absl::Milliseconds(200);
  return o;
}

std::shared_ptr<s3::CredentialsProvider> RgwServer::Credentials() const {
  s3::Credentials c;
  c.access_key_id = access_key_;
  c.secret_access_key = secret_key_;
  return s3::StaticCredentials(c, "test");
}

std::unique_ptr<s3::Client> RgwServer::NewClient() const {
  return std::make_unique<s3::Client>(Options(), Credentials());
}

std::vector<std::string> RgwServer::Env() const {
  return {"AWS_ACCESS_KEY_ID=" + access_key_, "AWS_SECRET_ACCESS_KEY=" + secret_key_,
          "AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"};
}

namespace {
std::unique_ptr<RgwServer>& Shared() {
  static auto* server = new std::unique_ptr<RgwServer>();
  return *server;
}
}  // namespace

void RgwEnvironment::SetUp() {
  auto s = RgwServer::Start();
  ASSERT_TRUE(s.ok()) << s.status();
  Shared() = std::move(*s);
}

void RgwEnvironment::TearDown() { Shared().reset(); }

RgwServer* SharedRgw() { return Shared().get(); }

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace testing
}  // namespace snapshot
