#include "store/s3/sigv4.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/sha256.h"

namespace snapshot {
namespace s3 {

std::string UriEncode(absl::string_view s, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string CanonicalQuery(const Params& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(UriEncode(k, false), UriEncode(v, false));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, k, "=", v);
  }
  return out;
}

namespace {

// Lower-case names, values trimmed with inner runs of spaces collapsed,
// sorted by name.
Params CanonicalHeaders(const Params& headers) {
  Params out;
  for (const auto& [k, v] : headers) {
    std::string value;
    bool space = false;
    for (char c : absl::StripAsciiWhitespace(v)) {
      if (c == ' ') {
        if (!space) value.push_back(c);
        space = true;
      } else {
        value.push_back(c);
        space = false;
      }
    }
    out.emplace_back(absl::AsciiStrToLower(k), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string SignedHeaderNames(const Params& canonical) {
  std::vector<std::string> names;
  for (const auto& h : canonical) names.push_back(h.first);
  return absl::StrJoin(names, ";");
}

}  // namespace

std::string CanonicalRequest(const SigningInput& in, const Params& headers_to_sign) {
  Params canonical = CanonicalHeaders(headers_to_sign);
  std::string headers;
  for (const auto& [k, v] : canonical) absl::StrAppend(&headers, k, ":", v, "\n");
  return absl::StrCat(in.method, "\n", in.path.empty() ? "/" : in.path, "\n",
                      CanonicalQuery(in.query), "\n", headers, "\n",
                      SignedHeaderNames(canonical), "\n", in.payload_sha256);
}

Signed SignV4(const SigningInput& in, const Credentials& creds, absl::string_view region,
              absl::string_view service, absl::Time now) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const std::string amz_date = absl::FormatTime("%Y%m%dT%H%M%SZ", now, utc);
  const std::string day = amz_date.substr(0, 8);
  Params to_sign = in.headers;
  to_sign.emplace_back("host", in.host);
  to_sign.emplace_back("x-amz-date", amz_date);
  to_sign.emplace_back("x-amz-content-sha256", in.payload_sha256);
  if (!creds.session_token.empty()) {
    to_sign.emplace_back("x-amz-security-token", creds.session_token);
  }
  const std::string scope = absl::StrCat(day, "/", region, "/", service, "/aws4_request");
  const std::string string_to_sign =
      absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n",
                   HexLower(Sha256Of(CanonicalRequest(in, to_sign))));
  Digest key = HmacSha256(absl::StrCat("AWS4", creds.secret_access_key), day);
  key = HmacSha256(DigestBytes(key), region);
  key = HmacSha256(DigestBytes(key), service);
  key = HmacSha256(DigestBytes(key), "aws4_request");
  const std::string signature = HexLower(HmacSha256(DigestBytes(key), string_to_sign));

  Signed out;
  out.query = CanonicalQuery(in.query);
  for (auto& h : to_sign) {
    if (h.first != "host") out.headers.push_back(h);  // libcurl sends Host itself
  }
  out.headers.emplace_back(
      "Authorization",
      absl::StrCat("AWS4-HMAC-SHA256 Credential=", creds.access_key_id, "/", scope,
                   ", SignedHeaders=", SignedHeaderNames(CanonicalHeaders(to_sign)),
                   ", Signature=", signature));
  return out;
}

}  // namespace s3
}  // namespace snapshot
