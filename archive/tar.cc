#include "archive/tar.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace snapshot {
namespace tar {
namespace {

// Field offsets and lengths of a USTAR header.
constexpr size_t kNameOff = 0, kNameLen = 100;
constexpr size_t kModeOff = 100;
constexpr size_t kUidOff = 108;
constexpr size_t kGidOff = 116;
constexpr size_t kSizeOff = 124, kSizeLen = 12;
constexpr size_t kMtimeOff = 136;
constexpr size_t kChksumOff = 148, kChksumLen = 8;
constexpr size_t kTypeOff = 156;
constexpr size_t kMagicOff = 257;
constexpr size_t kVersionOff = 263;
constexpr size_t kDevMajorOff = 329;
constexpr size_t kDevMinorOff = 337;
constexpr size_t kPrefixOff = 345, kPrefixLen = 155;

// Writes `v` as `len - 1` zero-padded octal digits and a NUL.
void PutOctal(char* field, size_t len, uint64_t v) {
  std::string s = absl::StrFormat("%0*o", static_cast<int>(len - 1), v);
  memcpy(field, s.data(), len - 1);
  field[len - 1] = '\0';
}

}  // namespace

std::string EncodeHeaderBlock(absl::string_view name, uint64_t size,
                              int64_t mtime, char typeflag) {
  std::string b(kBlockSize, '\0');
  char* p = &b[0];
  memcpy(p + kNameOff, name.data(), std::min(name.size(), kNameLen));
  PutOctal(p + kModeOff, 8, 0600);
  PutOctal(p + kUidOff, 8, 0);
  PutOctal(p + kGidOff, 8, 0);
  PutOctal(p + kSizeOff, 12, size);
  PutOctal(p + kMtimeOff, 12, static_cast<uint64_t>(mtime < 0 ? 0 : mtime));
  p[kTypeOff] = typeflag;
  memcpy(p + kMagicOff, "ustar\0", 6);
  memcpy(p + kVersionOff, "00", 2);
  PutOctal(p + kDevMajorOff, 8, 0);
  PutOctal(p + kDevMinorOff, 8, 0);
  // The checksum is computed with the checksum field itself set to spaces,
  // then written as 6 octal digits, NUL, space.
  memset(p + kChksumOff, ' ', kChksumLen);
  uint64_t sum = 0;
  for (unsigned char c : b) sum += c;
  std::string cs = absl::StrFormat("%06o", sum);
  memcpy(p + kChksumOff, cs.data(), 6);
  p[kChksumOff + 6] = '\0';
  p[kChksumOff + 7] = ' ';
  return b;
}

namespace {

// Parses a numeric header field: octal digits surrounded by optional spaces
// and NULs, or GNU base-256 (high bit of the first byte set).
bool ParseNumeric(absl::string_view f, uint64_t* out) {
  if (!f.empty() && (static_cast<unsigned char>(f[0]) & 0x80)) {
    if (static_cast<unsigned char>(f[0]) & 0x40) return false;  // negative
    uint64_t v = static_cast<unsigned char>(f[0]) & 0x3f;
    for (size_t i = 1; i < f.size(); ++i) {
      if (v >> 56) return false;  // overflow
      v = v << 8 | static_cast<unsigned char>(f[i]);
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < f.size() && (f[i] == ' ' || f[i] == '\0')) ++i;
  uint64_t v = 0;
  bool any = false;
  for (; i < f.size() && f[i] >= '0' && f[i] <= '7'; ++i) {
    if (v >> 61) return false;
    v = v * 8 + static_cast<uint64_t>(f[i] - '0');
    any = true;
  }
  for (; i < f.size(); ++i) {
    if (f[i] != ' ' && f[i] != '\0') return false;
  }
  *out = any ? v : 0;
  return true;
}

std::string CString(absl::string_view f) {
  size_t n = f.find('\0');
  return std::string(n == absl::string_view::npos ? f : f.substr(0, n));
}

}  // namespace

std::string PaxRecord(absl::string_view key, absl::string_view value) {
  std::string rec = absl::StrCat(" ", key, "=", value, "\n");
  size_t len = rec.size() + 1;
  while (absl::StrCat(len).size() + rec.size() != len) ++len;
  return absl::StrCat(len, rec);
}

std::string EncodeFileHeader(absl::string_view name, uint64_t size,
                             int64_t mtime) {
  if (size <= kMaxUstarSize) return EncodeHeaderBlock(name, size, mtime, '0');
  // As Go does: a PAX header carries the size, the USTAR size field is 0.
  std::string body = PaxRecord("size", absl::StrCat(size));
  std::string out = EncodeHeaderBlock(absl::StrCat("PaxHeaders.0/", name),
                                      body.size(), mtime, 'x');
  out += body;
  out.append(PaddingFor(body.size()), '\0');
  out += EncodeHeaderBlock(name, 0, mtime, '0');
  return out;
}

bool IsZeroBlock(absl::string_view block) {
  for (char c : block) {
    if (c != '\0') return false;
  }
  return true;
}

absl::StatusOr<Header> ParseHeader(absl::string_view b) {
  // Checksum: unsigned sum with the field read as spaces; Go and GNU tar also
  // accept the historic signed sum.
  uint64_t stored;
  if (!ParseNumeric(b.substr(kChksumOff, kChksumLen), &stored)) {
    return absl::DataLossError("invalid tar header: malformed checksum field");
  }
  int64_t usum = 0, ssum = 0;
  for (size_t i = 0; i < kBlockSize; ++i) {
    bool in_field = i >= kChksumOff && i < kChksumOff + kChksumLen;
    unsigned char c = in_field ? ' ' : static_cast<unsigned char>(b[i]);
    usum += c;
    ssum += static_cast<signed char>(c);
  }
  if (static_cast<int64_t>(stored) != usum &&
      static_cast<int64_t>(stored) != ssum) {
    return absl::DataLossError("invalid tar header: checksum mismatch");
  }
  Header h;
  h.typeflag = b[kTypeOff];
  if (!ParseNumeric(b.substr(kSizeOff, kSizeLen), &h.size)) {
    return absl::DataLossError("invalid tar header: malformed size field");
  }
  h.name = CString(b.substr(kNameOff, kNameLen));
  if (b.substr(kMagicOff, 6) == absl::string_view("ustar\0", 6)) {
    std::string prefix = CString(b.substr(kPrefixOff, kPrefixLen));
    if (!prefix.empty()) h.name = prefix + "/" + h.name;
  }
  return h;
}

absl::StatusOr<PaxRecords> ParsePax(absl::string_view body) {
  PaxRecords r;
  while (!body.empty()) {
    size_t sp = body.find(' ');
    uint64_t len;
    if (sp == absl::string_view::npos || sp == 0 ||
        !absl::SimpleAtoi(body.substr(0, sp), &len) || len <= sp + 1 ||
        len > body.size() || body[len - 1] != '\n') {
      return absl::DataLossError("invalid PAX header: malformed record");
    }
    absl::string_view rec = body.substr(sp + 1, len - sp - 2);
    body.remove_prefix(len);
    size_t eq = rec.find('=');
    if (eq == absl::string_view::npos) {
      return absl::DataLossError("invalid PAX header: record without '='");
    }
    absl::string_view key = rec.substr(0, eq), value = rec.substr(eq + 1);
    if (key == "size") {
      if (!absl::SimpleAtoi(value, &r.size) || value.empty() ||
          value[0] == '+' || value[0] == '-') {
        return absl::DataLossError("invalid PAX header: malformed size");
      }
      r.has_size = true;
    } else if (key == "path") {
      r.path = std::string(value);
      r.has_path = true;
    }
  }
  return r;
}

}  // namespace tar
}  // namespace snapshot
