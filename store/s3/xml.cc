#include "store/s3/xml.h"

#include <expat.h>

#include "absl/strings/str_cat.h"

namespace snapshot {
namespace s3 {

const XmlNode* XmlNode::Child(absl::string_view n) const {
  for (const auto& c : children) {
    if (c->name == n) return c.get();
  }
  return nullptr;
}

std::vector<const XmlNode*> XmlNode::Children(absl::string_view n) const {
  std::vector<const XmlNode*> out;
  for (const auto& c : children) {
    if (c->name == n) out.push_back(c.get());
  }
  return out;
}

std::string XmlNode::ChildText(absl::string_view n) const {
  const XmlNode* c = Child(n);
  return c == nullptr ? "" : c->text;
}

namespace {

struct Builder {
  std::unique_ptr<XmlNode> root;
  std::vector<XmlNode*> stack;
  bool too_deep = false;
  bool doctype = false;
  XML_Parser parser = nullptr;
};

// S3 never sends a DOCTYPE; one is refused before any entity is declared.
void XMLCALL Doctype(void* data, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  auto* b = static_cast<Builder*>(data);
  b->doctype = true;
  XML_StopParser(b->parser, XML_FALSE);
}

void XMLCALL Start(void* data, const XML_Char* name, const XML_Char**) {
  auto* b = static_cast<Builder*>(data);
  if (b->stack.size() >= static_cast<size_t>(kMaxXmlDepth)) {
    b->too_deep = true;
    return;
  }
  auto node = std::make_unique<XmlNode>();
  absl::string_view n(name);
  // With namespace processing on, expat joins "URI NAME" with a space.
  size_t sep = n.rfind(' ');
  node->name = std::string(sep == absl::string_view::npos ? n : n.substr(sep + 1));
  XmlNode* raw = node.get();
  if (b->stack.empty()) {
    if (b->root == nullptr) b->root = std::move(node);
  } else {
    b->stack.back()->children.push_back(std::move(node));
  }
  b->stack.push_back(raw);
}

void XMLCALL End(void* data, const XML_Char*) {
  auto* b = static_cast<Builder*>(data);
  if (b->too_deep) return;
  if (!b->stack.empty()) b->stack.pop_back();
}

void XMLCALL Text(void* data, const XML_Char* s, int len) {
  auto* b = static_cast<Builder*>(data);
  if (!b->stack.empty() && !b->too_deep) b->stack.back()->text.append(s, len);
}

}  // namespace

absl::StatusOr<std::unique_ptr<XmlNode>> ParseXml(absl::string_view xml) {
  if (xml.size() > kMaxXmlBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("an XML answer of ", xml.size(), " bytes is over the limit of ",
                     kMaxXmlBytes));
  }
  Builder b;
  XML_Parser p = XML_ParserCreateNS(nullptr, ' ');
  b.parser = p;
  XML_SetUserData(p, &b);
  XML_SetStartDoctypeDeclHandler(p, Doctype);
  XML_SetElementHandler(p, Start, End);
  XML_SetCharacterDataHandler(p, Text);
  const XML_Status st = XML_Parse(p, xml.data(), static_cast<int>(xml.size()), XML_TRUE);
  std::string error;
  if (b.doctype) {
    error = "a DOCTYPE declaration (refused)";
  } else if (st != XML_STATUS_OK) {
    error = absl::StrCat(XML_ErrorString(XML_GetErrorCode(p)), " at line ",
                         XML_GetCurrentLineNumber(p));
  }
  XML_ParserFree(p);
  if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat("malformed XML: ", error));
  if (b.too_deep) {
    return absl::InvalidArgumentError(
        absl::StrCat("XML nested deeper than ", kMaxXmlDepth, " elements"));
  }
  if (b.root == nullptr) return absl::InvalidArgumentError("an XML answer without an element");
  return std::move(b.root);
}

std::string XmlEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace s3
}  // namespace snapshot
