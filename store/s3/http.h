// One HTTP exchange over libcurl: the transport under the S3 client and the
// credential endpoints. No retries here (the callers decide), no logging.
//
// The response body goes to `sink` when the status is 2xx and a sink is
// given; otherwise (errors, small answers) it is kept in memory up to
// `max_body` bytes, past which the exchange fails with RESOURCE_EXHAUSTED.
// Transport failures (connect, reset, timeout, TLS) are UNAVAILABLE with
// libcurl's message, except a certificate that does not verify, which is
// FAILED_PRECONDITION (a retry will not fix it). A sink's own error ends the
// exchange and is returned as is.
//
// Threading: HttpExchange may run on many threads at once, each with its own
// handle (CurlHandle); libcurl's global state is set up once, thread-safely.
#ifndef SNAPSHOT_AGENT_STORE_S3_HTTP_H_
#define SNAPSHOT_AGENT_STORE_S3_HTTP_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/io.h"
#include "store/s3/sigv4.h"

namespace snapshot {
namespace s3 {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Params headers;
  absl::string_view body;      // sent as is (PUT/POST)
  ByteSink* sink = nullptr;    // for a 2xx body; nullptr: kept in memory
  size_t max_body = 16 << 20;  // for a body kept in memory
  std::string ca_file;
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration timeout = absl::ZeroDuration();  // whole exchange; zero: none
  long min_bytes_per_second = 1024;               // below it for stall_timeout: cut off
  absl::Duration stall_timeout = absl::Seconds(30);
};

struct HttpResponse {
  long status = 0;
  std::string body;
  Params headers;            // names lower-case
  uint64_t sink_bytes = 0;   // bytes given to the sink

  std::string Header(absl::string_view name) const;
};

// A libcurl easy handle, reused across exchanges (keeps connections alive).
class CurlHandle {
 public:
  CurlHandle();
  ~CurlHandle();
  CurlHandle(const CurlHandle&) = delete;
  CurlHandle& operator=(const CurlHandle&) = delete;
  void* get() const { return handle_; }

 private:
  void* handle_;
};

absl::StatusOr<HttpResponse> HttpExchange(CurlHandle* handle, const HttpRequest& req);

}  // namespace s3
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_S3_HTTP_H_
