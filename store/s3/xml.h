// A small read-only XML tree for S3's responses (ListObjectsV2,
// InitiateMultipartUpload, ListMultipartUploads, errors), parsed with expat.
// Namespaces are dropped from element names; attributes are ignored; text is
// the concatenated character data of an element.
//
// Thread-compatible. Errors: INVALID_ARGUMENT for malformed XML or over
// kMaxXmlBytes / kMaxXmlDepth (the server's answer is untrusted input).
#ifndef SNAPSHOT_AGENT_STORE_S3_XML_H_
#define SNAPSHOT_AGENT_STORE_S3_XML_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace snapshot {
namespace s3 {

constexpr size_t kMaxXmlBytes = 16 << 20;
constexpr int kMaxXmlDepth = 32;

struct XmlNode {
  std::string name;
  std::string text;
  std::vector<std::unique_ptr<XmlNode>> children;

  // The first child named `name`, or nullptr.
  const XmlNode* Child(absl::string_view name) const;
  // Every child named `name`, in document order.
  std::vector<const XmlNode*> Children(absl::string_view name) const;
  // The text of the first child named `name`, or "".
  std::string ChildText(absl::string_view name) const;
};

// The document's root element.
absl::StatusOr<std::unique_ptr<XmlNode>> ParseXml(absl::string_view xml);

// `s` with &, <, > and quotes escaped, for building request bodies.
std::string XmlEscape(absl::string_view s);

}  // namespace s3
}  // namespace snapshot

#endif  // SNAPSHOT_AGENT_STORE_S3_XML_H_
