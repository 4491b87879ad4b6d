#include "store/s3/client.h"

#include <algorithm>
#include <random>
#include <thread>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/io.h"
#include "base/sha256.h"
#include "store/s3/http.h"
#include "store/s3/xml.h"

namespace snapshot {
namespace s3 {

absl::Status ApplyServerSideEncryption(const ServerSideEncryption& sse, ClientOptions* options) {
  if (!sse.sse.empty() && !sse.sse_c_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--s3-sse and --s3-sse-c-key-file exclude each other: choose one kind of server-side "
        "encryption");
  }
  if (!sse.kms_key_id.empty() && sse.sse != "aws:kms") {
    return absl::InvalidArgumentError("--s3-sse-kms-key-id needs --s3-sse=aws:kms");
  }
  if (!sse.sse.empty()) {
    if (sse.sse != "AES256" && sse.sse != "aws:kms") {
      return absl::InvalidArgumentError("--s3-sse must be AES256 or aws:kms");
    }
    options->write_headers.push_back({"x-amz-server-side-encryption", sse.sse});
    if (!sse.kms_key_id.empty()) {
      options->write_headers.push_back(
          {"x-amz-server-side-encryption-aws-kms-key-id", sse.kms_key_id});
    }
  }
  if (!sse.sse_c_key_file.empty()) {
    absl::StatusOr<std::string> text =
        ReadSecretFile(sse.sse_c_key_file, "--s3-sse-c-key-file", 4096);
    if (!text.ok()) return text.status();
    std::string key = *text, decoded;
    if (key.size() != 32) {
      // Not 32 raw bytes: base64 of 32 (as `openssl rand -base64 32` writes).
      if (!absl::Base64Unescape(absl::StripAsciiWhitespace(key), &decoded) ||
          decoded.size() != 32) {
        OPENSSL_cleanse(key.data(), key.size());
        OPENSSL_cleanse(decoded.data(), decoded.size());
        return absl::InvalidArgumentError(absl::StrCat(
            "--s3-sse-c-key-file ", sse.sse_c_key_file,
            " must hold a 256-bit key: 32 bytes, or their base64 (openssl rand -base64 32)"));
      }
      OPENSSL_cleanse(key.data(), key.size());
      key = std::move(decoded);
    }
    unsigned char md5[EVP_MAX_MD_SIZE];
    unsigned int md5_len = 0;
    if (EVP_Digest(key.data(), key.size(), md5, &md5_len, EVP_md5(), nullptr) != 1) {
      return absl::InternalError("MD5 is not available from OpenSSL");
    }
    options->data_headers.push_back({"x-amz-server-side-encryption-customer-algorithm", "AES256"});
    options->data_headers.push_back(
        {"x-amz-server-side-encryption-customer-key", absl::Base64Escape(key)});
    options->data_headers.push_back(
        {"x-amz-server-side-encryption-customer-key-md5",
         absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(md5), md5_len))});
    OPENSSL_cleanse(key.data(), key.size());
  }
  return absl::OkStatus();
}

absl::StatusOr<S3Url> ParseS3Url(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "s3://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("remote \"", url, "\" is not of the form s3://BUCKET/PREFIX"));
  }
  S3Url out;
  size_t slash = rest.find('/');
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != absl::string_view::npos) {
    absl::string_view prefix = rest.substr(slash + 1);
    while (absl::ConsumeSuffix(&prefix, "/")) {
    }
    out.prefix = std::string(prefix);
  }
  // S3's bucket naming rules: 3-63 of [a-z0-9.-], starting and ending with a
  // letter or digit.
  bool ok = out.bucket.size() >= 3 && out.bucket.size() <= 63;
  for (char c : out.bucket) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-');
  }
  ok = ok && out.bucket.front() != '.' && out.bucket.front() != '-' &&
       out.bucket.back() != '.' && out.bucket.back() != '-';
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bucket name \"", out.bucket, "\" in ", url,
        " is not valid: 3 to 63 lower-case letters, digits, dots or hyphens"));
  }
  if (absl::StrContains(out.prefix, "//") || absl::StartsWith(out.prefix, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("prefix in ", url, " has an empty segment"));
  }
  return out;
}

struct Client::Request {
  std::string method;
  std::string key;  // empty: the bucket itself
  Params query;
  Params headers;
  absl::string_view body;
  ByteSink* sink = nullptr;
  size_t max_body = 16 << 20;
  bool retry = true;
};

struct Client::Response {
  HttpResponse http;
};

Client::Client(ClientOptions options, std::shared_ptr<CredentialsProvider> credentials)
    : options_(std::move(options)), credentials_(std::move(credentials)) {
  std::string endpoint = options_.endpoint;
  const bool aws = endpoint.empty();
  if (aws) endpoint = absl::StrCat("https://s3.", options_.region, ".amazonaws.com");
  absl::string_view e = endpoint;
  scheme_ = absl::ConsumePrefix(&e, "http://") ? "http" : "https";
  (void)absl::ConsumePrefix(&e, "https://");
  while (absl::ConsumeSuffix(&e, "/")) {
  }
  authority_ = std::string(e);
  switch (options_.addressing) {
    case ClientOptions::Addressing::kPath: path_style_ = true; break;
    case ClientOptions::Addressing::kVirtualHosted: path_style_ = false; break;
    case ClientOptions::Addressing::kAuto:
      // Virtual-hosted needs a bucket name that is a DNS label (no dots
      // under TLS) and an endpoint that resolves it: AWS's own.
      path_style_ = !aws || absl::StrContains(options_.bucket, ".");
      break;
  }
}

Client::~Client() {
  for (void* h : handles_) delete static_cast<CurlHandle*>(h);
}

void* Client::TakeHandle() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!handles_.empty()) {
      void* h = handles_.back();
      handles_.pop_back();
      return h;
    }
  }
  return new CurlHandle();
}

void Client::ReturnHandle(void* h) {
  std::lock_guard<std::mutex> l(mu_);
  if (handles_.size() < 16) {
    handles_.push_back(h);
  } else {
    delete static_cast<CurlHandle*>(h);
  }
}

std::string Client::Url(const Request& req, const std::string& query, std::string* host) const {
  std::string path;
  if (path_style_) {
    *host = authority_;
    path = absl::StrCat("/", options_.bucket, "/", UriEncode(req.key, true));
    if (req.key.empty()) path = absl::StrCat("/", options_.bucket);
  } else {
    *host = absl::StrCat(options_.bucket, ".", authority_);
    path = absl::StrCat("/", UriEncode(req.key, true));
  }
  return absl::StrCat(scheme_, "://", *host, path, query.empty() ? "" : "?", query);
}

absl::StatusOr<Client::Response> Client::SendOnce(const Request& req, const Credentials& creds) {
  SigningInput in;
  in.method = req.method;
  std::string url = Url(req, CanonicalQuery(req.query), &in.host);
  in.path = url.substr(url.find('/', scheme_.size() + 3));
  in.path = in.path.substr(0, in.path.find('?'));
  in.query = req.query;
  in.headers = req.headers;
  in.payload_sha256 = HexLower(Sha256Of(req.body));
  Signed s = SignV4(in, creds, options_.region, "s3", absl::Now());
  HttpRequest http;
  http.method = req.method;
  http.url = url;
  http.headers = s.headers;
  http.body = req.body;
  http.sink = req.sink;
  http.max_body = req.max_body;
  http.ca_file = options_.ca_file;
  http.connect_timeout = options_.connect_timeout;
  http.min_bytes_per_second = options_.min_bytes_per_second;
  http.stall_timeout = options_.stall_timeout;
  auto* h = static_cast<CurlHandle*>(TakeHandle());
  absl::StatusOr<HttpResponse> r = HttpExchange(h, http);
  ReturnHandle(h);
  if (!r.ok()) return r.status();
  return Response{std::move(*r)};
}

namespace {

std::string ErrorCode(const HttpResponse& r) {
  auto root = ParseXml(r.body);
  if (!root.ok()) return "";
  if ((*root)->name == "Error") return (*root)->ChildText("Code");
  const XmlNode* e = (*root)->Child("Error");
  return e == nullptr ? "" : e->ChildText("Code");
}

bool RetryableHttp(const HttpResponse& r, const std::string& code) {
  return r.status == 500 || r.status == 502 || r.status == 503 || r.status == 504 ||
         code == "RequestTimeout" || code == "SlowDown" || code == "InternalError";
}

bool CredentialsExpired(const std::string& code) {
  return code == "ExpiredToken" || code == "TokenRefreshRequired" ||
         code == "RequestExpired";
}

}  // namespace

absl::Status Client::ErrorOf(const Request& req, const Response& resp) const {
  const HttpResponse& r = resp.http;
  std::string code = ErrorCode(r);
  const bool said = !code.empty();  // the store named the error (a HEAD cannot)
  if (code.empty()) {
    // HEAD answers carry no body.
    if (r.status == 404) code = req.key.empty() ? "NoSuchBucket" : "NoSuchKey";
    if (r.status == 403) code = "AccessDenied";
  }
  const std::string where =
      req.key.empty() ? absl::StrCat("bucket ", options_.bucket)
                      : absl::StrCat("s3://", options_.bucket, "/", req.key);
  const std::string what =
      absl::StrCat(req.method, " ", where, ": HTTP ", r.status, code.empty() ? "" : " ", code);
  if (code == "NoSuchKey" || code == "NoSuchUpload") return absl::NotFoundError(what);
  if (code == "NoSuchBucket") {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " (the bucket does not exist: create it, or fix --remote)"));
  }
  if (said && code == "AccessDenied") {
    // Known credentials, an action the bucket's or the user's policy denies.
    const std::string source = credentials_ ? credentials_->Source() : "none";
    return absl::FailedPreconditionError(absl::StrCat(
        what, " (the policy does not allow this action for the agent's S3 credentials, from ",
        source, ": see docs/remote.md, \"Minimal IAM policy\")"));
  }
  if (code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
      code == "AccessDenied" || CredentialsExpired(code) || code == "InvalidToken" ||
      r.status == 401 || r.status == 403) {
    const std::string source = credentials_ ? credentials_->Source() : "none";
    return absl::FailedPreconditionError(absl::StrCat(
        what, " (the store refused the agent's S3 credentials, from ", source,
        ": check the key, its secret, the region and the policy's permissions)"));
  }
  if (code == "XAmzContentSHA256Mismatch" || code == "BadDigest" ||
      code == "InvalidDigest") {
    return absl::DataLossError(
        absl::StrCat(what, " (the bytes the store received differ from those sent)"));
  }
  if (RetryableHttp(r, code)) return absl::UnavailableError(what);
  if (r.status == 412) return absl::AbortedError(absl::StrCat(what, " (the object changed)"));
  if (r.status == 416) return absl::OutOfRangeError(what);
  if (r.status >= 400 && r.status < 500) return absl::InvalidArgumentError(what);
  return absl::InternalError(what);
}

absl::StatusOr<Client::Response> Client::Send(const Request& req) {
  std::mt19937_64 rng(std::random_device{}());
  absl::Duration backoff = options_.first_backoff;
  bool refreshed = false;
  absl::Status last;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<Credentials> creds = credentials_->Get();
    if (!creds.ok()) return creds.status();
    absl::StatusOr<Response> r = SendOnce(req, *creds);
    bool retry = false;
    if (!r.ok()) {
      last = r.status();
      retry = r.status().code() == absl::StatusCode::kUnavailable;
    } else if (r->http.status >= 200 && r->http.status < 300) {
      return r;
    } else {
      const std::string code = ErrorCode(r->http);
      if (CredentialsExpired(code) && !refreshed) {
        credentials_->Invalidate();
        refreshed = true;
        --attempt;  // not a failure of the store
        continue;
      }
      last = ErrorOf(req, *r);
      // A body-hash mismatch may be corruption on the way: send again.
      retry = RetryableHttp(r->http, code) || last.code() == absl::StatusCode::kDataLoss;
    }
    if (!retry || !req.retry || attempt >= options_.max_attempts) {
      if (retry && attempt > 1) {
        return absl::Status(last.code(), absl::StrCat(last.message(), " (after ", attempt,
                                                      " attempts)"));
      }
      return last;
    }
    // Full jitter: anywhere in [backoff/2, backoff].
    std::uniform_int_distribution<int64_t> d(absl::ToInt64Microseconds(backoff) / 2,
                                             absl::ToInt64Microseconds(backoff));
    std::this_thread::sleep_for(std::chrono::microseconds(d(rng)));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status Client::CheckBucket() {
  Request req;
  req.method = "HEAD";
  req.retry = false;  // a check: one attempt, the caller decides
  return Send(req).status();
}

absl::Status Client::PutObject(const std::string& key, absl::string_view body,
                               const Params& headers) {
  Request req;
  req.method = "PUT";
  req.key = key;
  req.body = body;
  req.headers = headers;
  for (const auto& h : options_.write_headers) req.headers.push_back(h);
  for (const auto& h : options_.data_headers) req.headers.push_back(h);
  return Send(req).status();
}

absl::StatusOr<std::string> Client::CreateMultipartUpload(const std::string& key,
                                                          const Params& headers) {
  Request req;
  req.method = "POST";
  req.key = key;
  req.query = {{"uploads", ""}};
  req.headers = headers;
  for (const auto& h : options_.write_headers) req.headers.push_back(h);
  for (const auto& h : options_.data_headers) req.headers.push_back(h);
  absl::StatusOr<Response> r = Send(req);
  if (!r.ok()) return r.status();
  auto root = ParseXml(r->http.body);
  if (!root.ok() || (*root)->ChildText("UploadId").empty()) {
    return absl::InternalError(absl::StrCat(
        "the store answered CreateMultipartUpload of ", key, " without an UploadId"));
  }
  return (*root)->ChildText("UploadId");
}

absl::StatusOr<std::string> Client::UploadPart(const std::string& key,
                                               const std::string& upload_id, int part_number,
                                               absl::string_view data) {
  Request req;
  req.method = "PUT";
  req.key = key;
  req.query = {{"partNumber", absl::StrCat(part_number)}, {"uploadId", upload_id}};
  req.body = data;
  req.headers = options_.data_headers;
  absl::StatusOr<Response> r = Send(req);
  if (!r.ok()) return r.status();
  std::string etag = r->http.Header("etag");
  if (etag.empty()) {
    return absl::InternalError(absl::StrCat("the store answered part ", part_number, " of ",
                                            key, " without an ETag"));
  }
  return etag;
}

absl::Status Client::CompleteMultipartUpload(const std::string& key,
                                             const std::string& upload_id,
                                             const std::vector<std::string>& etags) {
  std::string body = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i) {
    absl::StrAppend(&body, "<Part><PartNumber>", i + 1, "</PartNumber><ETag>",
                    XmlEscape(etags[i]), "</ETag></Part>");
  }
  body += "</CompleteMultipartUpload>";
  Request req;
  req.method = "POST";
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  req.body = body;
  req.headers = options_.data_headers;
  absl::StatusOr<Response> r = Send(req);
  if (!r.ok()) return r.status();
  // S3 may answer 200 with an error in the body when the assembly failed.
  const std::string code = ErrorCode(r->http);
  if (!code.empty()) {
    return absl::UnavailableError(absl::StrCat("completing the upload of s3://",
                                               options_.bucket, "/", key, " failed: ", code));
  }
  return absl::OkStatus();
}

absl::Status Client::AbortMultipartUpload(const std::string& key, const std::string& upload_id) {
  Request req;
  req.method = "DELETE";
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  absl::Status s = Send(req).status();
  return s.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : s;
}

namespace {

absl::Time ParseS3Time(const std::string& s) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*SZ", s, &t, &err)) return t;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", s, &t, &err)) return t;
  return absl::InfinitePast();
}

}  // namespace

absl::StatusOr<std::vector<MultipartUpload>> Client::ListMultipartUploads(
    const std::string& prefix) {
  std::vector<MultipartUpload> out;
  std::string key_marker, id_marker;
  for (int page = 0; page < 10000; ++page) {
    Request req;
    req.method = "GET";
    req.query = {{"uploads", ""}, {"prefix", prefix}};
    if (!key_marker.empty()) {
      req.query.emplace_back("key-marker", key_marker);
      req.query.emplace_back("upload-id-marker", id_marker);
    }
    absl::StatusOr<Response> r = Send(req);
    if (!r.ok()) return r.status();
    auto root = ParseXml(r->http.body);
    if (!root.ok()) return absl::InternalError(absl::StrCat("ListMultipartUploads: ", root.status().message()));
    for (const XmlNode* u : (*root)->Children("Upload")) {
      out.push_back({u->ChildText("Key"), u->ChildText("UploadId"),
                     ParseS3Time(u->ChildText("Initiated"))});
    }
    if ((*root)->ChildText("IsTruncated") != "true") return out;
    key_marker = (*root)->ChildText("NextKeyMarker");
    id_marker = (*root)->ChildText("NextUploadIdMarker");
    if (key_marker.empty()) return out;
  }
  return out;
}

absl::StatusOr<std::vector<ObjectInfo>> Client::ListObjects(const std::string& prefix) {
  std::vector<ObjectInfo> out;
  std::string token;
  for (int page = 0; page < 100000; ++page) {
    Request req;
    req.method = "GET";
    req.query = {{"list-type", "2"}, {"prefix", prefix}};
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
    absl::StatusOr<Response> r = Send(req);
    if (!r.ok()) return r.status();
    auto root = ParseXml(r->http.body);
    if (!root.ok()) return absl::InternalError(absl::StrCat("ListObjectsV2: ", root.status().message()));
    for (const XmlNode* c : (*root)->Children("Contents")) {
      ObjectInfo o;
      o.key = c->ChildText("Key");
      (void)absl::SimpleAtoi(c->ChildText("Size"), &o.size);
      o.etag = c->ChildText("ETag");
      o.last_modified = ParseS3Time(c->ChildText("LastModified"));
      out.push_back(std::move(o));
    }
    if ((*root)->ChildText("IsTruncated") != "true") return out;
    token = (*root)->ChildText("NextContinuationToken");
    if (token.empty()) return out;
  }
  return out;
}

absl::StatusOr<ObjectInfo> Client::HeadObject(const std::string& key) {
  Request req;
  req.method = "HEAD";
  req.key = key;
  req.headers = options_.data_headers;
  absl::StatusOr<Response> r = Send(req);
  if (!r.ok()) return r.status();
  ObjectInfo o;
  o.key = key;
  (void)absl::SimpleAtoi(r->http.Header("content-length"), &o.size);
  o.etag = r->http.Header("etag");
  o.last_modified = ParseS3Time(r->http.Header("last-modified"));
  return o;
}

namespace {

// Counts and bounds what a GET gives its sink.
class BoundedSink : public ByteSink {
 public:
  BoundedSink(ByteSink* next, uint64_t limit, std::string what)
      : next_(next), limit_(limit), what_(std::move(what)) {}
  absl::Status Write(absl::string_view data) override {
    if (written_ + data.size() > limit_) {
      return absl::ResourceExhaustedError(
          absl::StrCat(what_, " is larger than the limit of ", limit_, " bytes"));
    }
    written_ += data.size();
    return next_->Write(data);
  }
  uint64_t written() const { return written_; }

 private:
  ByteSink* next_;
  uint64_t limit_;
  std::string what_;
  uint64_t written_ = 0;
};

}  // namespace

absl::StatusOr<uint64_t> Client::GetObject(const std::string& key, uint64_t offset,
                                           ByteSink* sink, uint64_t max_bytes) {
  BoundedSink bounded(sink, max_bytes, absl::StrCat("s3://", options_.bucket, "/", key));
  // Every request names the object's version (If-Match), so a resumed GET
  // never splices two versions of one key.
  absl::StatusOr<ObjectInfo> info = HeadObject(key);
  if (!info.ok()) return info.status();
  if (offset >= info->size) return uint64_t{0};
  if (info->size - offset > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "s3://", options_.bucket, "/", key, " has ", info->size - offset,
        " bytes from offset ", offset, ", over the limit of ", max_bytes));
  }
  const std::string etag = info->etag;
  std::mt19937_64 rng(std::random_device{}());
  absl::Duration backoff = options_.first_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    Request req;
    req.method = "GET";
    req.key = key;
    req.sink = &bounded;
    req.retry = false;
    req.headers = options_.data_headers;
    const uint64_t at = offset + bounded.written();
    if (at > 0) req.headers.emplace_back("Range", absl::StrCat("bytes=", at, "-"));
    if (!etag.empty()) req.headers.emplace_back("If-Match", etag);
    absl::StatusOr<Response> r = Send(req);
    if (r.ok()) {
      if (at > 0 && r->http.status != 206) {
        return absl::InternalError(absl::StrCat(
            "the store ignored the range of a GET of s3://", options_.bucket, "/", key));
      }
      return bounded.written();
    }
    last = r.status();
    if (last.code() != absl::StatusCode::kUnavailable) return last;
    std::uniform_int_distribution<int64_t> d(absl::ToInt64Microseconds(backoff) / 2,
                                             absl::ToInt64Microseconds(backoff));
    std::this_thread::sleep_for(std::chrono::microseconds(d(rng)));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return absl::Status(last.code(), absl::StrCat(last.message(), " (after ",
                                                options_.max_attempts, " attempts)"));
}

absl::StatusOr<std::string> Client::GetSmallObject(const std::string& key, size_t max_bytes) {
  std::string data;
  StringSink out(&data);
  absl::StatusOr<uint64_t> n = GetObject(key, 0, &out, max_bytes);
  if (!n.ok()) return n.status();
  return data;
}

absl::Status Client::DeleteObject(const std::string& key) {
  Request req;
  req.method = "DELETE";
  req.key = key;
  absl::Status s = Send(req).status();
  return s.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : s;
}

}  // namespace s3
}  // namespace snapshot
