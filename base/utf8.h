// UTF-8 validity (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF), for output formats that require it (JSON).
#ifndef SNAPSHOT_AGENT_BASE_UTF8_H_
#define SNAPSHOT_AGENT_BASE_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace snapshot {

// Length (1 to 4) of the valid UTF-8 sequence that starts `s`, or 0 when `s`
// is empty or does not start with one.
size_t Utf8SequenceLength(absl::string_view s);

bool IsValidUtf8(absl::string_view s);

}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_BASE_UTF8_H_
