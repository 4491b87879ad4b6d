#include "store/s3/xml.h"

#include <gtest/gtest.h>

namespace snapshot {
namespace s3 {
namespace {

TEST(Xml, ListObjectsAnswer) {
  auto root = ParseXml(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><IsTruncated>true</IsTruncated>"
      "<Contents><Key>p/a&amp;b.snap</Key><Size>12</Size></Contents>"
      "<Contents><Key>p/c.json</Key><Size>3</Size></Contents>"
      "<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ((*root)->name, "ListBucketResult");
  EXPECT_EQ((*root)->ChildText("IsTruncated"), "true");
  auto contents = (*root)->Children("Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(contents[0]->ChildText("Key"), "p/a&b.snap");
  EXPECT_EQ(contents[1]->ChildText("Size"), "3");
  EXPECT_EQ((*root)->ChildText("Missing"), "");
}

TEST(Xml, HostileInputIsRefused) {
  EXPECT_FALSE(ParseXml("<a><b></a>").ok());
  EXPECT_FALSE(ParseXml("").ok());
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  for (int i = 0; i < 100; ++i) deep += "</a>";
  EXPECT_FALSE(ParseXml(deep).ok());
  // Entity expansion ("billion laughs") is not a way around the limits.
  std::string bomb =
      "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
      "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">"
      "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">"
      "<!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\"><!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">]>"
      "<r>&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;</r>";
  EXPECT_FALSE(ParseXml(bomb).ok());
  EXPECT_EQ(XmlEscape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
}

}  // namespace
}  // namespace s3
}  // namespace snapshot
