// Bech32 (BIP 173) as age uses it for its keys: "age1..." recipients and
// "AGE-SECRET-KEY-1..." identities. Unlike BIP 173, no 90-character limit
// (age's own implementation has none); mixed case is refused, as BIP 173 says.
//
//   std::string s = Bech32Encode("age", key);   // "age1..."
//   auto d = Bech32Decode(s);                  // d->hrp == "age", d->data == key
//
// Threading: pure functions. Errors: INVALID_ARGUMENT naming what is wrong
// (never echoing the input, which may be a secret key).
#ifndef SNAPSHOT_AGENT_AGE_BECH32_H_
#define SNAPSHOT_AGENT_AGE_BECH32_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace snapshot {
namespace age {

struct Bech32 {
  std::string hrp;   // lower case
  std::string data;  // the 8-bit bytes
};

// Encodes `data` under the human-readable part `hrp` (lower case output).
std::string Bech32Encode(absl::string_view hrp, absl::string_view data);

// Decodes a Bech32 string (all lower or all upper case); the hrp comes back in
// lower case.
absl::StatusOr<Bech32> Bech32Decode(absl::string_view s);

}  // namespace age
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_AGE_BECH32_H_
