// A real S3 server for tests: tools/rgw.sh (Ceph RGW on loopback) started in
// a directory of the test's, with a user and a bucket, stopped when the object
// goes away. For tests only.
#ifndef SNAPSHOT_AGENT_STORE_TESTING_RGW_SERVER_H_
#define SNAPSHOT_AGENT_STORE_TESTING_RGW_SERVER_H_

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "store/s3/client.h"

namespace snapshot {
namespace testing {

class RgwServer {
 public:
  // Runs tools/rgw.sh (found relative to the working directory, as Bazel
  // runs tests, or at $SNAPSHOT_AGENT_RGW_SH) in a fresh directory under /tmp
  // (Ceph's admin sockets need a short path), removed at the end.
  static absl::StatusOr<std::unique_ptr<RgwServer>> Start();
  ~RgwServer();

  const std::string& endpoint() const { return endpoint_; }
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }
  const std::string& bucket() const { return bucket_; }

  // Options for a client of the bucket (path style, quick retries).
  s3::ClientOptions Options() const;
  std::shared_ptr<s3::CredentialsProvider> Credentials() const;
  std::unique_ptr<s3::Client> NewClient() const;
  // The variables that give an agent or awscli this server's credentials.
  std::vector<std::string> Env() const;

 private:
  RgwServer() = default;
  std::string dir_, script_, endpoint_, access_key_, secret_key_, bucket_;
};

// One server for a whole test binary, started before the first test:
//   ::testing::AddGlobalTestEnvironment(new snapshot::testing::RgwEnvironment());
// then SharedRgw() in the tests.
class RgwEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;
};
RgwServer* SharedRgw();

// `n` pseudo-random bytes from `seed` (incompressible test data).
std::string RandomBytes(size_t n, uint64_t seed);

}  // namespace testing
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_TESTING_RGW_SERVER_H_
