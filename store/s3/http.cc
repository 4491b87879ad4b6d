#include "store/s3/http.h"

#include <curl/curl.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace snapshot {
namespace s3 {

std::string HttpResponse::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Exchange {
  CURL* curl;
  const HttpRequest* req;
  HttpResponse* resp;
  absl::string_view to_send;
  absl::Status sink_error;
  bool too_big = false;
};

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  size_t len = std::min(size * n, x->to_send.size());
  memcpy(buf, x->to_send.data(), len);
  x->to_send.remove_prefix(len);
  return len;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
  if (x->req->sink != nullptr && status >= 200 && status < 300) {
    absl::Status s = x->req->sink->Write(absl::string_view(data, len));
    if (!s.ok()) {
      x->sink_error = s;
      return 0;  // ends the transfer
    }
    x->resp->sink_bytes += len;
    return len;
  }
  if (x->resp->body.size() + len > x->req->max_body) {
    x->too_big = true;
    return 0;
  }
  x->resp->body.append(data, len);
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    x->resp->headers.clear();  // a new response (after 100 Continue, a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos && x->resp->headers.size() < 200) {
    x->resp->headers.emplace_back(
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon))),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return size * n;
}

}  // namespace

CurlHandle::CurlHandle() {
  GlobalInit();
  handle_ = curl_easy_init();
  if (handle_ == nullptr) abort();  // out of memory
}

CurlHandle::~CurlHandle() { curl_easy_cleanup(static_cast<CURL*>(handle_)); }

absl::StatusOr<HttpResponse> HttpExchange(CurlHandle* handle, const HttpRequest& req) {
  CURL* c = static_cast<CURL*>(handle->get());
  curl_easy_reset(c);
  HttpResponse resp;
  Exchange x{c, &req, &resp, req.body, absl::OkStatus(), false};
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(req.connect_timeout)));
  if (req.timeout > absl::ZeroDuration()) {
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(req.timeout)));
  }
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, req.min_bytes_per_second);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(absl::ToInt64Seconds(req.stall_timeout)));
  if (!req.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, req.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
  if (req.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead);
    curl_easy_setopt(c, CURLOPT_READDATA, &x);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    if (req.method == "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  struct curl_slist* headers = nullptr;
  for (const auto& [k, v] : req.headers) {
    headers = curl_slist_append(headers, absl::StrCat(k, ": ", v).c_str());
  }
  // No "Expect: 100-continue" round trip before each part.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  if (!x.sink_error.ok()) return x.sink_error;
  if (x.too_big) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the answer from ", req.url, " is over ", req.max_body, " bytes: refused"));
  }
  if (rc != CURLE_OK) {
    const std::string what = error[0] != 0 ? error : curl_easy_strerror(rc);
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
      return absl::FailedPreconditionError(
          absl::StrCat("TLS to ", req.url, " failed: ", what, " (check the CA file)"));
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
      return absl::InvalidArgumentError(absl::StrCat("bad URL ", req.url, ": ", what));
    }
    return absl::UnavailableError(absl::StrCat(req.method, " ", req.url, ": ", what));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

}  // namespace s3
}  // namespace snapshot
