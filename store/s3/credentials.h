// Where the agent's S3 credentials come from: the chain the AWS tools use,
// in their order, the first source that is configured wins:
//   1. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN);
//   2. the shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and
//      AWS_CONFIG_FILE (~/.aws/config), profile AWS_PROFILE (default
//      "default"): aws_access_key_id, aws_secret_access_key,
//      aws_session_token;
//   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
//      (+ AWS_ROLE_SESSION_NAME) exchanged at STS by
//      AssumeRoleWithWebIdentity (how EKS pods get roles); STS at
//      AWS_ENDPOINT_URL_STS, else https://sts.REGION.amazonaws.com;
//   4. the ECS container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI, or
//      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI under http://169.254.170.2,
//      with AWS_CONTAINER_AUTHORIZATION_TOKEN when set;
//   5. EC2 instance metadata, IMDSv2 (a session token first), at
//      AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254; not
//      tried when AWS_EC2_METADATA_DISABLED=true.
// Temporary credentials (3-5) are fetched again five minutes before they
// expire, and at once after the store answered ExpiredToken (Invalidate).
//
// Errors: FAILED_PRECONDITION when no source is configured or a configured
// one is malformed (a profile without a key, an unreadable token file);
// UNAVAILABLE when an endpoint cannot be reached (retry later). Messages name
// the source and the file or variable, never a key or token.
//
// Threading: Get and Invalidate may be called from any thread.
#ifndef SNAPSHOT_AGENT_STORE_S3_CREDENTIALS_H_
#define SNAPSHOT_AGENT_STORE_S3_CREDENTIALS_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/s3/sigv4.h"

namespace snapshot {
namespace s3 {

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials, fetched again when they are near their expiry.
  virtual absl::StatusOr<Credentials> Get() = 0;
  // The store said the credentials expired: the next Get fetches new ones.
  virtual void Invalidate() {}
  // Which source the credentials come from ("environment", "shared files
  // (profile p)", "web identity", "container endpoint", "instance metadata").
  virtual std::string Source() const = 0;
};

// Fixed credentials (tests, and the environment and shared-file sources).
std::shared_ptr<CredentialsProvider> StaticCredentials(Credentials c, std::string source);

// The environment the chain reads (the process's by default; tests pass
// their own).
using GetEnv = std::function<std::string(const std::string&)>;
std::string ProcessEnv(const std::string& name);

// The chain above: picks the first configured source, once. `region` is
// STS's region when AWS_ENDPOINT_URL_STS is not set.
absl::StatusOr<std::shared_ptr<CredentialsProvider>> DefaultCredentialsChain(
    const std::string& region, GetEnv env = ProcessEnv);

// Exposed for tests: one profile's keys from the shared credentials file and
// config file texts ("[name]" in credentials, "[profile name]" or
// "[default]" in config; credentials wins).
absl::StatusOr<Credentials> ParseSharedFiles(const std::string& credentials_text,
                                             const std::string& config_text,
                                             const std::string& profile);

}  // namespace s3
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_S3_CREDENTIALS_H_
