// UDPquery over the in-memory link, on a fake clock (docs/service-checks.md#udpquery): a DNS-like service
// that echoes the ID (the token), forged answers with wrong IDs that never count, answers that are not what
// `expect` says (unexpected, not loss), port unreachables (closed, not loss), and a service without token
// matched on the 5-tuple.
#include <tins/tins.h>

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "engine/engine.h"
#include "io/fake_link.h"
#include "lab.h"
#include "responder.h"

namespace netprobe {
namespace {

using std::chrono::microseconds;
using Bytes = std::vector<uint8_t>;

// UDPquery targets over 4 source ports.
struct Lab : testing::EngineLab {
  Lab() : EngineLab(40000, 40003) {}
  TargetConfig& add(const std::string& name, const char* dst, uint16_t port, const char* payload,
                    uint16_t token_length, const char* expect_kind = "any", const char* expect_value = "") {
    // Without a token: one probe per flow (4 source ports).
    TargetConfig& t =
        testing::add_target(config, name, ProbeType::kUdpQuery, dst, port, token_length ? 20 : 4);
    t.payload = payload;
    t.token_length = token_length;
    t.expect_kind = expect_kind;
    t.expect_value = expect_value;
    return t;
  }
  std::map<std::string, GroupMeasurement> run(IterationReport* raw = nullptr) {
    const IterationReport r = runs(1).front();
    if (raw) *raw = r;
    return testing::by_target(r);
  }
};

// The service's answer to `probe`: a UDP datagram back on the probe's 5-tuple whose payload is made from
// the probe's payload.
template <typename F>
Bytes answer(std::span<const uint8_t> probe, F make_payload) {
  const bool v6 = (probe[0] >> 4) == 6;
  const size_t l4 = v6 ? 40 : size_t(probe[0] & 0x0f) * 4;
  const uint16_t sport = uint16_t(probe[l4] << 8 | probe[l4 + 1]);
  const uint16_t dport = uint16_t(probe[l4 + 2] << 8 | probe[l4 + 3]);
  const Bytes request(probe.begin() + long(l4 + 8), probe.end());
  Tins::UDP udp(sport, dport);
  udp.inner_pdu(Tins::RawPDU(make_payload(request)));
  if (!v6) {
    Tins::IP in(probe.data(), uint32_t(probe.size()));
    return (Tins::IP(in.src_addr(), in.dst_addr()) / udp).serialize();
  }
  Tins::IPv6 in(probe.data(), uint32_t(probe.size()));
  return (Tins::IPv6(in.src_addr(), in.dst_addr()) / udp).serialize();
}

// DNS-like: the request's ID, then flags and an A record's address.
Bytes dns_answer(const Bytes& request) { return {request[0], request[1], 0x81, 0x80, 192, 0, 2, 9}; }
Bytes dns_forged(const Bytes& request) {
  return {uint8_t(request[0] ^ 0x40), uint8_t(request[1] + 1), 0x81, 0x80, 192, 0, 2, 9};
}

void add_dns(Lab& lab) {
  lab.add("dns", "198.51.100.53", 53, "hex:0000 0100 0001", 2, "contains", "hex:c0000209");
  lab.add("dns6", "2001:db8::53", 53, "hex:0000 0100 0001", 2, "contains", "hex:c0000209");
}

TEST(UdpQueryComponent, EchoedTokenAndExpectedContentIsAnAnswer) {
  Lab lab;
  add_dns(lab);
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{answer(p, dns_answer), microseconds(120)}};
  });
  for (const auto& [name, g] : lab.run()) {
    EXPECT_EQ(g.sent, 20u) << name;
    EXPECT_EQ(g.lost, 0u) << name;
    EXPECT_EQ(g.unexpected + g.closed, 0u) << name;
    ASSERT_EQ(g.rtts_s.size(), 20u) << name;
    for (double rtt : g.rtts_s) EXPECT_NEAR(rtt, 120e-6, 1e-9) << name;
    EXPECT_EQ(g.flows.size(), 4u) << name << ": per-path results over the group's 4 source ports";
  }
}

TEST(UdpQueryComponent, ForgedAnswersWithWrongIdsNeverCount) {
  Lab lab;
  add_dns(lab);
  // Alone, forged answers leave every probe lost; before the real answer, they change nothing.
  for (bool real_too : {false, true}) {
    lab.link.set_responder([real_too](std::span<const uint8_t> p) {
      std::vector<ScriptedReply> r{{answer(p, dns_forged), microseconds(50)},
                                   {answer(p, [](const Bytes&) { return Bytes{0x12}; }), microseconds(60)}};
      if (real_too) r.push_back({answer(p, dns_answer), microseconds(120)});
      return r;
    });
    IterationReport raw;
    for (const auto& [name, g] : lab.run(&raw)) {
      EXPECT_EQ(g.sent, 20u) << name;
      EXPECT_EQ(g.lost, real_too ? 0u : 20u) << name;
      EXPECT_EQ(g.rtts_s.size(), real_too ? 20u : 0u) << name;
      EXPECT_EQ(g.unexpected, 0u) << name << ": a wrong ID is not the probe's answer at all";
      for (double rtt : g.rtts_s) EXPECT_NEAR(rtt, 120e-6, 1e-9) << name;
    }
    EXPECT_EQ(raw.rejected["wrong_token"], 80u) << "2 forged datagrams x 20 probes x 2 targets";
  }
}

TEST(UdpQueryComponent, WrongContentIsUnexpectedNotLoss) {
  Lab lab;
  add_dns(lab);
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{answer(p,
                                              [](const Bytes& q) {
                                                return Bytes{q[0], q[1], 0x81, 0x83};
                                              }),
                                       microseconds(100)}};
  });
  for (const auto& [name, g] : lab.run()) {
    EXPECT_EQ(g.sent, 20u) << name;
    EXPECT_EQ(g.lost, 0u) << name;
    EXPECT_EQ(g.unexpected, 20u) << name;
    EXPECT_TRUE(g.rtts_s.empty()) << name;
  }
}

TEST(UdpQueryComponent, PortUnreachableIsClosedNotLoss) {
  Lab lab;
  add_dns(lab);
  lab.add("echo", "198.51.100.7", 7, "ping", 0, "exact", "ping");
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(100)}};  // port unreachable
  });
  for (const auto& [name, g] : lab.run()) {
    EXPECT_EQ(g.closed, g.sent) << name;
    EXPECT_GT(g.sent, 0u) << name;
    EXPECT_EQ(g.lost, 0u) << name;
    EXPECT_EQ(g.icmp_errors.begin()->second, g.sent) << name;
  }
}

TEST(UdpQueryComponent, WithoutTokenTheFiveTupleMatches) {
  Lab lab;
  lab.add("exact", "198.51.100.7", 7, "ping", 0, "exact", "ping");
  lab.add("contains", "198.51.100.8", 7, "ping", 0, "contains", "in");
  lab.add("regex", "198.51.100.9", 7, "ping", 0, "regex", "^p.ng$");
  lab.add("wrong", "198.51.100.10", 7, "ping", 0, "exact", "pong");
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{answer(p, [](const Bytes& q) { return q; }), microseconds(100)}};
  });
  auto r = lab.run();
  for (const char* name : {"exact", "contains", "regex"}) {
    EXPECT_EQ(r[name].sent, 4u) << name;
    EXPECT_EQ(r[name].lost, 0u) << name;
    EXPECT_EQ(r[name].rtts_s.size(), 4u) << name;
  }
  EXPECT_EQ(r["wrong"].unexpected, 4u);
  EXPECT_EQ(r["wrong"].lost, 0u);
  // From another source port (not the probe's 5-tuple): nothing.
  lab.link.set_responder([](std::span<const uint8_t> p) {
    Bytes a = answer(p, [](const Bytes& q) { return q; });
    const size_t l4 = (a[0] >> 4) == 6 ? 40 : 20;
    a[l4] ^= 0x01;  // the service's port (UDP checksum not checked by classify)
    return std::vector<ScriptedReply>{{a, microseconds(100)}};
  });
  for (const auto& [name, g] : lab.run()) EXPECT_EQ(g.lost, 4u) << name;
}

}  // namespace
}  // namespace netprobe
