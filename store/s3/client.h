// A client for the S3 API (AWS S3, Ceph RGW, MinIO, R2, GCS in
// interoperability mode): the calls the remote snapshot store needs, signed
// with SigV4 (sigv4.h), over libcurl, each retried with backoff and jitter
// on what a retry can fix.
//
// Retried: connection failures, resets and timeouts, HTTP 500/502/503/504
// (503 SlowDown included) and S3's RequestTimeout, up to
// ClientOptions::max_attempts in all; a request whose credentials expired is
// retried once with fresh ones. A GET that fails part-way resumes at the
// byte it reached, and only from the same object (If-Match on its ETag).
//
// Errors, by what the caller does next:
// - UNAVAILABLE: the store could not be reached or kept failing (retry later);
// - FAILED_PRECONDITION: the store refused the agent's own configuration —
//   its credentials (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied,
//   ExpiredToken), a missing bucket, SSE settings it rejects;
// - NOT_FOUND: no such object (or multipart upload);
// - DATA_LOSS: the store reports that the bytes it received differ from the
//   bytes sent (x-amz-content-sha256 or Content-MD5 mismatch), after retries;
// - INVALID_ARGUMENT / INTERNAL for the rest, with the S3 error code.
// Messages name the bucket, the key and S3's error code; never a secret.
//
// Threading: every method may be called from several threads at once; each
// call uses a libcurl handle of its own, taken from a small pool so that
// connections are reused.
#ifndef SNAPSHOT_AGENT_STORE_S3_CLIENT_H_
#define SNAPSHOT_AGENT_STORE_S3_CLIENT_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/io.h"
#include "store/s3/credentials.h"
#include "store/s3/sigv4.h"

namespace snapshot {
namespace s3 {

// "s3://BUCKET/PREFIX" (PREFIX may be empty; it is returned without leading
// or trailing slashes).
struct S3Url {
  std::string bucket;
  std::string prefix;
};
absl::StatusOr<S3Url> ParseS3Url(absl::string_view url);

struct ClientOptions {
  // "http://host:port" or "https://host"; empty: AWS's regional endpoint.
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  // Path style (endpoint/bucket/key) or virtual-hosted (bucket.endpoint/key);
  // kAuto: virtual-hosted on AWS, path style on a custom endpoint.
  enum class Addressing { kAuto, kPath, kVirtualHosted };
  Addressing addressing = Addressing::kAuto;
  std::string ca_file;  // PEM bundle for https; empty: the system's
  // Headers sent with every object write (server-side encryption).
  Params write_headers;
  // Headers sent with every request that reads or writes object data (SSE-C).
  Params data_headers;
  int max_attempts = 6;
  absl::Duration first_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(20);
  absl::Duration connect_timeout = absl::Seconds(10);
  // A transfer slower than this many bytes/s for `stall_timeout` is cut off
  // (and retried).
  long min_bytes_per_second = 1024;
  absl::Duration stall_timeout = absl::Seconds(30);
};

// Server-side encryption for buckets whose policy demands it
// (docs/remote.md): `sse` is "" (none), "AES256" or "aws:kms" (with an
// optional `kms_key_id`); `sse_c_key_file` holds a customer key (SSE-C): 32
// bytes, raw or base64, in a file of mode 0600 (refused otherwise). Fills
// `options`' write_headers and data_headers. SSE-C and `sse` exclude each
// other. INVALID_ARGUMENT naming the flag; the key is never in a message.
struct ServerSideEncryption {
  std::string sse;
  std::string kms_key_id;
  std::string sse_c_key_file;
};
absl::Status ApplyServerSideEncryption(const ServerSideEncryption& sse, ClientOptions* options);

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;
  absl::Time last_modified;
};

struct MultipartUpload {
  std::string key;
  std::string upload_id;
  absl::Time initiated;
};

class Client {
 public:
  Client(ClientOptions options, std::shared_ptr<CredentialsProvider> credentials);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientOptions& options() const { return options_; }

  // HEAD of the bucket: reachable, credentials accepted, bucket exists. One
  // attempt, not retried.
  absl::Status CheckBucket();

  // A whole object from memory (small objects: sidecars, markers).
  absl::Status PutObject(const std::string& key, absl::string_view body,
                         const Params& headers = {});

  absl::StatusOr<std::string> CreateMultipartUpload(const std::string& key,
                                                    const Params& headers = {});
  // Returns the part's ETag. The store checks the part against its SHA-256.
  absl::StatusOr<std::string> UploadPart(const std::string& key, const std::string& upload_id,
                                         int part_number, absl::string_view data);
  absl::Status CompleteMultipartUpload(const std::string& key, const std::string& upload_id,
                                       const std::vector<std::string>& etags);
  absl::Status AbortMultipartUpload(const std::string& key, const std::string& upload_id);
  // Every multipart upload in progress under `prefix` (all pages).
  absl::StatusOr<std::vector<MultipartUpload>> ListMultipartUploads(const std::string& prefix);

  // Every object under `prefix` (ListObjectsV2, all pages of 1,000).
  absl::StatusOr<std::vector<ObjectInfo>> ListObjects(const std::string& prefix);
  absl::StatusOr<ObjectInfo> HeadObject(const std::string& key);
  // The object's bytes from `offset` to its end into `sink`, refused with
  // RESOURCE_EXHAUSTED past `max_bytes`. Returns the number of bytes written.
  absl::StatusOr<uint64_t> GetObject(const std::string& key, uint64_t offset, ByteSink* sink,
                                     uint64_t max_bytes);
  // A small object whole (at most `max_bytes`).
  absl::StatusOr<std::string> GetSmallObject(const std::string& key, size_t max_bytes);
  // Deleting a missing object succeeds (S3's semantics).
  absl::Status DeleteObject(const std::string& key);

  struct Request;
  struct Response;

 private:
  absl::StatusOr<Response> Send(const Request& req);
  absl::StatusOr<Response> SendOnce(const Request& req, const Credentials& creds);
  absl::Status ErrorOf(const Request& req, const Response& resp) const;
  std::string Url(const Request& req, const std::string& query, std::string* host) const;
  void* TakeHandle();
  void ReturnHandle(void* h);

  ClientOptions options_;
  std::shared_ptr<CredentialsProvider> credentials_;
  std::string scheme_, authority_;  // from the endpoint
  bool path_style_ = true;
  std::mutex mu_;
  std::vector<void*> handles_;  // guarded by mu_: idle libcurl handles
};

}  // namespace s3
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_S3_CLIENT_H_
