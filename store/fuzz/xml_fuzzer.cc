// libFuzzer target for the S3 client's XML parsing (tools/fuzz.sh xml builds
// and runs it with ASan and UBSan): every answer of an S3 server is untrusted
// input. Each input is parsed as a document; a tree that parses is walked the
// way the client reads ListObjectsV2, ListMultipartUploads and errors, and
// must respect the depth bound. Nothing may crash, leak or hit undefined
// behaviour. (That a DOCTYPE is refused is xml_test's.)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "store/s3/xml.h"

namespace {

int Depth(const snapshot::s3::XmlNode& n) {
  int d = 0;
  for (const auto& c : n.children) d = std::max(d, Depth(*c));
  return d + 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string xml(reinterpret_cast<const char*>(data), size);
  auto root = snapshot::s3::ParseXml(xml);
  if (!root.ok()) return 0;
  if (Depth(**root) > snapshot::s3::kMaxXmlDepth + 1) {
    fprintf(stderr, "deeper than kMaxXmlDepth\n");
    abort();
  }
  const auto& r = **root;
  for (const auto* c : r.Children("Contents")) {
    (void)c->ChildText("Key");
    (void)c->ChildText("Size");
    (void)c->ChildText("ETag");
  }
  for (const auto* u : r.Children("Upload")) (void)u->ChildText("UploadId");
  (void)r.ChildText("NextContinuationToken");
  if (const auto* e = r.Child("Error")) (void)e->ChildText("Code");
  (void)r.ChildText("Code");
  return 0;
}
