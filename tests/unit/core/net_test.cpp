#include "core/net.h"

#include <gtest/gtest.h>

namespace netprobe {
namespace {

TEST(IpAddress, ParsesBothFamiliesAndRejectsNames) {
  EXPECT_EQ(IpAddress::parse("192.0.2.1")->af, AddressFamily::kV4);
  EXPECT_EQ(IpAddress::parse("fd00::1")->af, AddressFamily::kV6);
  EXPECT_FALSE(IpAddress::parse("example.com"));
  EXPECT_FALSE(IpAddress::parse("10.0.0.256"));
  EXPECT_EQ(IpAddress::parse("fd00::1")->to_string(), "fd00::1");
}

TEST(IpNetwork, MasksAndIndexes) {
  auto n = IpNetwork::parse("10.1.2.77/30");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->to_string(), "10.1.2.76/30");
  EXPECT_EQ(n->size(), 4u);
  EXPECT_EQ(n->at(3).to_string(), "10.1.2.79");
  auto v6 = IpNetwork::parse("fd00:1::/126");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->base.af, AddressFamily::kV6);
  EXPECT_EQ(v6->at(2).to_string(), "fd00:1::2");
  EXPECT_EQ(IpNetwork::parse("10.0.0.1")->prefix, 32);
  EXPECT_FALSE(IpNetwork::parse("10.0.0.0/33"));
  EXPECT_FALSE(IpNetwork::parse("10.0.0.0/x"));
}

TEST(IpNetwork, AddCarriesAcrossBytes) {
  auto n = IpNetwork::parse("10.0.0.0/8");
  EXPECT_EQ(n->at(256 + 255).to_string(), "10.0.1.255");
  EXPECT_EQ(n->size(), 1u << 24);
}

}  // namespace
}  // namespace netprobe
