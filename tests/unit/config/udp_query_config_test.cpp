// UDPquery's configuration keys (docs/service-checks.md#udpquery): good and bad rows through the schema and
// the loader, each error at its key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "config/loader.h"

namespace netprobe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kHead = R"(global:
  probe_name: lab
  interval: 30
  nb_proc: 1
  logging_level: INFO
  prometheus_port: 8000
  dns_update_interval: 300
groups:
  g:
    src_port_a: 40000
    src_port_z: 40003
targets:
  q:
)";

LoadedConfig load_target(const std::string& body) {
  return load_config_string(std::string(kHead) + body, "t.yaml");
}

struct Row {
  const char* name;
  std::string target;  // the target's keys, indented by 4
  const char* error;   // "" = valid; else a substring of the only error
};

TEST(config_udpquery, GoodAndBadRows) {
  const std::string big_text(1233, 'x');
  const std::string max_text(1232, 'x');
  const Row rows[] = {
      {"dns with its ID as token",
       "    type: UDPquery\n    destination: 192.0.2.53\n    dst_port: 53\n"
       "    payload: 'hex:0000 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001'\n"
       "    token: {offset: 0, length: 2}\n    expect: {contains: 'hex:c0000209'}\n",
       ""},
      {"ntp: 8-byte token echoed elsewhere",
       "    type: UDPquery\n    destination: 192.0.2.123\n    dst_port: 123\n"
       "    payload: 'base64:IwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'\n"
       "    token: {offset: 40, length: 8, reply_offset: 24}\n",
       ""},
      {"text payload, exact",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n"
       "    payload: ping\n    expect: {exact: ping}\n",
       ""},
      {"regex",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {regex: '^p[io]ng$'}\n",
       ""},
      {"any",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {any: true}\n",
       ""},
      {"largest payload",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: " + max_text + "\n",
       ""},
      {"missing payload", "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n",
       "targets.q.payload: required for UDPquery"},
      {"missing dst_port", "    type: UDPquery\n    destination: 192.0.2.7\n    payload: ping\n",
       "targets.q.dst_port: required for UDPquery"},
      {"payload too large",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: " + big_text + "\n",
       "targets.q.payload: longer than 1232 bytes"},
      {"empty payload", "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ''\n",
       "targets.q.payload: empty"},
      {"bad hex", "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: 'hex:0g'\n",
       "targets.q.payload: hex: invalid character"},
      {"odd hex", "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: 'hex:abc'\n",
       "targets.q.payload: hex: odd number of digits"},
      {"bad base64",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: 'base64:A'\n",
       "targets.q.payload: base64: truncated"},
      {"regex that does not compile",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {regex: '(unclosed'}\n",
       "targets.q.expect: regex: missing )"},
      {"backreference (RE2 refuses)",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {regex: '(a)\\1'}\n",
       "targets.q.expect: regex:"},
      {"two expect kinds",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {exact: ping, contains: pi}\n",
       "targets.q.expect: exactly one of any, exact, contains, regex"},
      {"no expect kind",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {}\n",
       "targets.q.expect: exactly one of any, exact, contains, regex"},
      {"unknown expect kind",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {prefix: pi}\n",
       "targets.q.expect.prefix: unknown key"},
      {"bad exact bytes",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    expect: {exact: 'hex:1'}\n",
       "targets.q.expect: hex: odd number of digits"},
      {"token past the payload",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    token: {offset: 3, length: 2}\n",
       "targets.q.token: token field ends past the payload"},
      {"token length 1",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    token: {offset: 0, length: 1}\n",
       "targets.q.token: token length must be 2 to 8 bytes"},
      {"token length 9",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    token: {offset: 0, length: 9}\n",
       "targets.q.token.length: 9 is greater than the maximum 8"},
      {"token length 0",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "    token: {offset: 0, length: 0}\n",
       "targets.q.token.length: 0 is less than the minimum 1"},
      {"token without length",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n"
       "    payload: ping\n    token: {offset: 0}\n",
       "targets.q.token.length: required key missing"},
      {"payload on another type",
       "    type: TCPsyn\n    destination: 192.0.2.7\n    dst_port: 7\n"
       "    payload: ping\n",
       "targets.q.payload: only for UDPquery targets"},
      {"no token: more packets than source ports",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n    nb_packets: "
       "5\n",
       "targets.q.nb_packets: 5 packets but group \"g\" has 4 source port(s)"},
      {"a token lifts that limit",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: pingpong\n"
       "    nb_packets: 50\n    token: {offset: 0, length: 4}\n",
       ""},
      {"two token-less targets on one 5-tuple",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "  r:\n    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: pong\n",
       "targets.r.destination: UDPquery without a token to the same destination, port and source ports "
       "(group \"g\") as target \"q\""},
      {"the same, written another way",
       "    type: UDPquery\n    destination: '2001:DB8::7'\n    dst_port: 7\n    payload: ping\n"
       "  r:\n    type: UDPquery\n    destination: '2001:db8:0::7'\n    dst_port: 7\n    payload: pong\n",
       "as target \"q\""},
      {"another port",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "  r:\n    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 8\n    payload: pong\n",
       ""},
      {"one of them with a token",
       "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: ping\n"
       "  r:\n    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: pong\n"
       "    token: {offset: 0, length: 2}\n",
       ""},
  };
  for (const Row& r : rows) {
    const LoadedConfig c = load_target(r.target);
    if (std::string(r.error).empty()) {
      EXPECT_TRUE(c.ok()) << r.name << ": " << (c.diagnostics.errors.empty() ? "" : c.diagnostics.errors[0]);
      continue;
    }
    ASSERT_EQ(c.diagnostics.errors.size(), 1u)
        << r.name << ": " << (c.diagnostics.errors.empty() ? "no error" : c.diagnostics.errors[0]);
    EXPECT_THAT(c.diagnostics.errors[0], HasSubstr(r.error)) << r.name;
  }
}

TEST(config_udpquery, ValuesReachTheTarget) {
  const LoadedConfig c = load_target(
      "    type: UDPquery\n    destination: 192.0.2.123\n    dst_port: 123\n    payload: 'hex:23 00'\n"
      "    token: {offset: 0, length: 2, reply_offset: 4}\n    expect: {regex: '^x'}\n");
  ASSERT_TRUE(c.ok()) << c.diagnostics.errors[0];
  const TargetConfig& t = c.config->targets.at("q");
  EXPECT_EQ(t.type, ProbeType::kUdpQuery);
  EXPECT_EQ(t.payload, "hex:23 00");
  EXPECT_EQ(t.expect_kind, "regex");
  EXPECT_EQ(t.expect_value, "^x");
  EXPECT_EQ(t.token_offset, 0);
  EXPECT_EQ(t.token_length, 2);
  EXPECT_EQ(t.token_reply_offset, 4);
  // reply_offset defaults to offset; expect to any.
  const LoadedConfig d = load_target(
      "    type: UDPquery\n    destination: 192.0.2.7\n    dst_port: 7\n    payload: abcdef\n"
      "    token: {offset: 2, length: 2}\n");
  ASSERT_TRUE(d.ok()) << d.diagnostics.errors[0];
  EXPECT_EQ(d.config->targets.at("q").token_reply_offset, 2);
  EXPECT_EQ(d.config->targets.at("q").expect_kind, "any");
}

}  // namespace
}  // namespace netprobe
