#include "age/bech32.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace snapshot {
namespace age {
namespace {

constexpr char kCharset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

uint32_t Polymod(const std::vector<uint8_t>& values) {
  static constexpr uint32_t kGen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd,
                                       0x2a1462b3};
  uint32_t chk = 1;
  for (uint8_t v : values) {
    const uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (int i = 0; i < 5; ++i) {
      if ((top >> i) & 1) chk ^= kGen[i];
    }
  }
  return chk;
}

std::vector<uint8_t> HrpExpand(absl::string_view hrp) {
  std::vector<uint8_t> out;
  out.reserve(hrp.size() * 2 + 1);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) >> 5);
  out.push_back(0);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) & 31);
  return out;
}

// Regroups bits; `pad` adds zero bits at the end (8 -> 5), otherwise leftover
// bits must be fewer than `from` and zero (5 -> 8).
bool ConvertBits(const std::vector<uint8_t>& in, int from, int to, bool pad,
                 std::vector<uint8_t>* out) {
  uint32_t acc = 0;
  int bits = 0;
  const uint32_t maxv = (1u << to) - 1;
  for (uint8_t v : in) {
    if ((v >> from) != 0) return false;
    acc = (acc << from) | v;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out->push_back(static_cast<uint8_t>((acc >> bits) & maxv));
    }
  }
  if (pad) {
    if (bits > 0) out->push_back(static_cast<uint8_t>((acc << (to - bits)) & maxv));
  } else if (bits >= from || ((acc << (to - bits)) & maxv) != 0) {
    return false;
  }
  return true;
}

}  // namespace

std::string Bech32Encode(absl::string_view hrp, absl::string_view data) {
  const std::string lower_hrp = absl::AsciiStrToLower(hrp);
  std::vector<uint8_t> bytes(data.begin(), data.end());
  std::vector<uint8_t> five;
  ConvertBits(bytes, 8, 5, true, &five);
  std::vector<uint8_t> values = HrpExpand(lower_hrp);
  values.insert(values.end(), five.begin(), five.end());
  values.insert(values.end(), 6, 0);
  const uint32_t mod = Polymod(values) ^ 1;
  std::string out = absl::StrCat(lower_hrp, "1");
  for (uint8_t v : five) out.push_back(kCharset[v]);
  for (int i = 0; i < 6; ++i) out.push_back(kCharset[(mod >> (5 * (5 - i))) & 31]);
  return out;
}

absl::StatusOr<Bech32> Bech32Decode(absl::string_view s) {
  bool lower = false, upper = false;
  for (char c : s) {
    if (c < 33 || c > 126) {
      return absl::InvalidArgumentError("not a Bech32 string: a character outside printable ASCII");
    }
    lower |= absl::ascii_islower(static_cast<unsigned char>(c));
    upper |= absl::ascii_isupper(static_cast<unsigned char>(c));
  }
  if (lower && upper) return absl::InvalidArgumentError("not a Bech32 string: mixed case");
  const std::string str = absl::AsciiStrToLower(s);
  const size_t sep = str.rfind('1');
  if (sep == std::string::npos || sep == 0 || sep + 7 > str.size()) {
    return absl::InvalidArgumentError("not a Bech32 string: no separator or too short");
  }
  std::vector<uint8_t> values;
  for (size_t i = sep + 1; i < str.size(); ++i) {
    const char* p = strchr(kCharset, str[i]);
    if (p == nullptr || *p == '\0') {
      return absl::InvalidArgumentError("not a Bech32 string: a character outside its alphabet");
    }
    values.push_back(static_cast<uint8_t>(p - kCharset));
  }
  Bech32 out;
  out.hrp = str.substr(0, sep);
  std::vector<uint8_t> check = HrpExpand(out.hrp);
  check.insert(check.end(), values.begin(), values.end());
  if (Polymod(check) != 1) {
    return absl::InvalidArgumentError("Bech32 checksum mismatch: the key was mistyped or cut");
  }
  values.resize(values.size() - 6);
  std::vector<uint8_t> bytes;
  if (!ConvertBits(values, 5, 8, false, &bytes)) {
    return absl::InvalidArgumentError("not a Bech32 string: bad padding");
  }
  out.data.assign(bytes.begin(), bytes.end());
  return out;
}

}  // namespace age
}  // namespace snapshot
