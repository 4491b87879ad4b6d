// AWS Signature Version 4 for S3 requests (the published algorithm:
// canonical request, string to sign, derived signing key), signed here with
// OpenSSL's HMAC-SHA-256 rather than by libcurl: Debian 12's libcurl 7.88
// signs S3 requests wrongly unless every caller works around it (unsorted
// queries, missing x-amz-content-sha256, valueless parameters), and a signer
// of our own is a pure function that a unit test pins to AWS's examples.
//
// Pure functions, thread-safe. Secrets go into the signature only: nothing
// here logs or returns them.
#ifndef SNAPSHOT_AGENT_STORE_S3_SIGV4_H_
#define SNAPSHOT_AGENT_STORE_S3_SIGV4_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace snapshot {
namespace s3 {

// Credentials of an AWS principal. `session_token` is set for temporary
// credentials, which expire at `expiration`.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  absl::Time expiration = absl::InfiniteFuture();
};

using Params = std::vector<std::pair<std::string, std::string>>;

// What is signed of one request.
struct SigningInput {
  std::string method;             // "GET", "PUT", ...
  std::string host;               // the Host header as sent: "host" or "host:port"
  std::string path;               // the URI path, already URI-encoded ("/bucket/key")
  Params query;                   // query parameters, not encoded, any order
  Params headers;                 // further headers to sign (any case)
  std::string payload_sha256;     // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

// The signature's results: the headers to send (Authorization, x-amz-date,
// x-amz-content-sha256, x-amz-security-token when there is a session token,
// and the input's own headers), and the query string exactly as signed
// (sorted and encoded), to be sent as is.
struct Signed {
  Params headers;
  std::string query;
};

Signed SignV4(const SigningInput& in, const Credentials& creds, absl::string_view region,
              absl::string_view service, absl::Time now);

// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept,
// everything else %XX (upper-case hex); '/' kept when `keep_slash`.
std::string UriEncode(absl::string_view s, bool keep_slash);

// The canonical query string: sorted by name, names and values encoded,
// "name=" for an empty value.
std::string CanonicalQuery(const Params& query);

// Exposed for tests: the canonical request SignV4 hashes.
std::string CanonicalRequest(const SigningInput& in, const Params& headers_to_sign);

}  // namespace s3
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_S3_SIGV4_H_
