// A whole iteration over the in-memory link, on a fake clock: the engine crafts and paces probes, the
// scripted responder answers (or not), the runner matches, and the report says what the metrics will.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>

#include "wire/bytes.h"

#include "io/fake_link.h"
#include "lab.h"
#include "responder.h"

namespace netprobe {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using testing::ReplyKind;

using testing::by_target;

// Six targets (TCP, ICMP and UDP, IPv4 and IPv6) of 20 probes over 4 source ports.
struct Lab : testing::EngineLab {
  Lab() : EngineLab(65000, 65003) {
    add("tcp", ProbeType::kTcpSyn, "198.51.100.1", 80);
    add("icmp", ProbeType::kIcmpPing, "198.51.100.2", 0);
    add("udp", ProbeType::kUdpUnreachable, "198.51.100.3", 33434);
    add("tcp6", ProbeType::kTcpSyn, "2001:db8::1", 80);
    add("icmp6", ProbeType::kIcmpPing, "2001:db8::2", 0);
    add("udp6", ProbeType::kUdpUnreachable, "2001:db8::3", 33434);
  }
  void add(const std::string& name, ProbeType type, const char* dst, uint16_t port) {
    testing::add_target(config, name, type, dst, port, 20);
  }
  IterationReport run(EngineOptions options = {}) { return runs(1, options).front(); }
};

uint8_t protocol_of(std::span<const uint8_t> p) { return (p[0] >> 4) == 6 ? p[6] : p[9]; }

TEST(EngineComponent, EveryProbeAnsweredGivesZeroLossAndTheExactRtt) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(150)}};
  });
  const auto report = by_target(lab.run());
  ASSERT_EQ(report.size(), 6u);
  for (const auto& [name, g] : report) {
    EXPECT_EQ(g.sent, 20u) << name;
    EXPECT_EQ(g.lost, 0u) << name;
    ASSERT_EQ(g.rtts_s.size(), 20u) << name;
    for (double rtt : g.rtts_s) EXPECT_NEAR(rtt, 150e-6, 1e-9) << name;
    EXPECT_EQ(g.late + g.duplicates + g.time_ooo, 0u) << name;
  }
}

TEST(EngineComponent, DroppedProbesAreLossAndOnlyThose) {
  Lab lab;
  int n = 0;
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    if (++n % 4 == 0) return std::vector<ScriptedReply>{};  // every 4th probe is dropped
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(80)}};
  });
  uint64_t sent = 0, lost = 0;
  for (const auto& [name, g] : by_target(lab.run())) {
    sent += g.sent;
    lost += g.lost;
    EXPECT_EQ(g.rtts_s.size(), g.sent - g.lost) << name;
  }
  EXPECT_EQ(sent, 120u);
  EXPECT_EQ(lost, 30u);
}

// Per flow (docs/paths.md): a black-holed source port loses all of its flow's probes and nothing else; a
// port whose answers come late shows them as late; ICMPping, without ports, has one flow per source.
TEST(EngineComponent, EachFlowIsAccountedOnItsOwn) {
  Lab lab;
  auto src_port = [](std::span<const uint8_t> p) -> uint16_t {
    const size_t l4 = (p[0] >> 4) == 6 ? 40 : size_t(p[0] & 0xf) * 4;
    return wire::load_be16(p.data() + l4);
  };
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    const uint8_t proto = protocol_of(p);
    const bool ported = proto == 6 || proto == 17;
    if (ported && src_port(p) == 65001) return std::vector<ScriptedReply>{};  // black hole
    if (ported && src_port(p) == 65002)
      return std::vector<ScriptedReply>{{testing::reply_to(p), milliseconds(1500)}};  // late (timeout 1 s)
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(100)}};
  });
  const IterationReport r = lab.run();
  for (const auto& [name, g] : by_target(r)) {
    SCOPED_TRACE(name);
    const bool icmp = g.type == ProbeType::kIcmpPing;
    ASSERT_EQ(g.flows.size(), icmp ? 1u : 4u);
    uint64_t sent = 0, lost = 0;
    for (const FlowMeasurement& f : g.flows) {
      SCOPED_TRACE(f.src_port);
      sent += f.sent;
      lost += f.lost;
      ASSERT_LT(f.src, r.sources.size());
      ASSERT_LT(f.dst, g.flow_destinations.size());
      EXPECT_EQ(r.sources[f.src].to_string(), g.af == AddressFamily::kV4 ? "192.0.2.10" : "2001:db8:ff::10");
      EXPECT_EQ(g.flow_destinations[f.dst].to_string(), lab.config.targets.at(name).destination);
      if (icmp) {
        EXPECT_EQ(f.src_port, 0u);
        EXPECT_EQ(f.sent, 20u);
        EXPECT_EQ(f.lost, 0u);
        continue;
      }
      EXPECT_EQ(f.sent, 5u) << "20 probes over 4 ports";
      const bool hole = f.src_port == 65001, late = f.src_port == 65002;
      EXPECT_EQ(f.lost, hole || late ? 5u : 0u);
      EXPECT_EQ(f.rtt_count, hole || late ? 0u : 5u);
      if (!hole && !late) {
        EXPECT_NEAR(f.rtt_sum_s, 5 * 100e-6, 1e-10);
      }
      if (late) {
        EXPECT_GT(f.late, 0u) << "answers after the iteration ended are not seen";
      } else {
        EXPECT_EQ(f.late, 0u);
      }
    }
    EXPECT_EQ(sent, g.sent);
    EXPECT_EQ(lost, g.lost);
  }
}

TEST(EngineComponent, AnswerAfterTheDeadlineIsLateAndLost) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::reply_to(p), milliseconds(1500)}};  // timeout is 1 s
  });
  for (const auto& [name, g] : by_target(lab.run())) {
    EXPECT_EQ(g.lost, 20u) << name;
    EXPECT_TRUE(g.rtts_s.empty()) << name;
    // Answers to the last probes arrive after the iteration ended; the earlier ones are counted late.
    EXPECT_GT(g.late, 0u) << name;
  }
}

TEST(EngineComponent, DuplicateAnswersAreCountedNotAnswered) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    auto r = testing::reply_to(p);
    return std::vector<ScriptedReply>{{r, microseconds(100)}, {r, microseconds(200)}};
  });
  for (const auto& [name, g] : by_target(lab.run())) {
    EXPECT_EQ(g.lost, 0u) << name;
    EXPECT_EQ(g.rtts_s.size(), 20u) << name;
    EXPECT_EQ(g.duplicates, 20u) << name;
  }
}

TEST(EngineComponent, RepliesToProbesWeNeverSentChangeNothing) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::foreign_reply_to(p), microseconds(100)}};
  });
  const auto raw = lab.run();
  for (const auto& [name, g] : by_target(raw)) {
    EXPECT_EQ(g.lost, 20u) << name;
    EXPECT_TRUE(g.rtts_s.empty()) << name;
  }
  uint64_t ack_fail = 0;
  for (const auto& t : raw.targets) ack_fail += t.match_ack_fail;
  EXPECT_EQ(ack_fail, 40u) << "SYN-ACKs acking a sequence we never sent: netprobify's match_ack_fail";
}

TEST(EngineComponent, IcmpErrorQuotingAProbeIsLossCountedByType) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    const bool v6 = (p[0] >> 4) == 6;
    // host unreachable (v4 3/1, v6 1/3), except UDP which gets its natural answer
    if (protocol_of(p) == 17) return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(90)}};
    return std::vector<ScriptedReply>{
        {testing::reply_to(p, ReplyKind::kIcmpError, v6 ? 1 : 3, v6 ? 3 : 1), microseconds(90)}};
  });
  const auto report = by_target(lab.run());
  EXPECT_EQ(report.at("tcp").lost, 20u);
  EXPECT_EQ(report.at("tcp").icmp_errors.at("unreachable:1"), 20u);
  EXPECT_EQ(report.at("icmp").icmp_errors.at("unreachable:1"), 20u);
  EXPECT_EQ(report.at("tcp6").icmp_errors.at("unreachable:3"), 20u);
  EXPECT_EQ(report.at("udp").lost, 0u) << "port unreachable is UDPunreachable's answer";
  EXPECT_TRUE(report.at("udp").icmp_errors.empty());
}

TEST(EngineComponent, RstAckAnswersASynAsInNetprobify) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::reply_to(p, ReplyKind::kRstAck), microseconds(70)}};
  });
  const auto report = by_target(lab.run());
  EXPECT_EQ(report.at("tcp").lost, 0u);
  EXPECT_EQ(report.at("tcp6").lost, 0u);
}

TEST(EngineComponent, WithoutOwnProbeCopiesTheSenderStampIsUsed) {
  Lab lab;
  FakeLink::Options o;
  o.deliver_outgoing = false;
  FakeLink link(lab.clock, o);
  link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(120)}};
  });
  auto plan = lab.make_plan();
  Engine engine(lab.clock, link.sink(), link.source(), 7, testing::fake_engine_options());
  const auto report = engine.run_iteration(*plan, IterationSettings{10, 0, Nanos::max()});
  for (const auto& g : report.groups) {
    EXPECT_EQ(g.lost, 0u) << g.target;
    EXPECT_EQ(g.rtts_s.size() + g.time_ooo, 20u) << g.target;
  }
}

TEST(EngineComponent, ProbesTheKernelRefusedAreNotAccountedAsSent) {
  Lab lab;
  lab.link.set_send_filter([](std::span<const uint8_t> p) { return protocol_of(p) != 17; });  // UDP fails
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(100)}};
  });
  const auto raw = lab.run();
  EXPECT_EQ(raw.send_errors, (std::map<std::string, uint64_t>{{"other", 40}})) << "the fake link's reason";
  const auto report = by_target(raw);
  EXPECT_EQ(report.at("udp").sent, 0u);
  EXPECT_EQ(report.at("udp").lost, 0u);
  EXPECT_EQ(report.at("tcp").sent, 20u);
}

// A refusal about the destination (a local firewall rule, no route, larger than the path MTU) is what the
// operator must see as loss; a local shortage (full buffers, no socket) is not the path's fault.
TEST(EngineComponent, RefusalsAboutTheDestinationAreLossLocalOnesAreNot) {
  const struct {
    SendError error;
    bool counts_as_loss;
  } cases[] = {{SendError::kPermission, true}, {SendError::kUnreachable, true}, {SendError::kTooBig, true},
               {SendError::kNoBuffer, false},  {SendError::kNoSocket, false},   {SendError::kInvalid, false},
               {SendError::kOther, false}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(to_string(c.error)));
    Lab lab;
    lab.link.set_send_filter([](std::span<const uint8_t> p) { return protocol_of(p) != 17; }, c.error);
    lab.link.set_responder([](std::span<const uint8_t> p) {
      return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(100)}};
    });
    const auto raw = lab.run();
    EXPECT_EQ(raw.send_errors, (std::map<std::string, uint64_t>{{std::string(to_string(c.error)), 40}}));
    const auto report = by_target(raw);
    EXPECT_EQ(report.at("udp").sent, c.counts_as_loss ? 20u : 0u);
    EXPECT_EQ(report.at("udp").lost, c.counts_as_loss ? 20u : 0u);
    EXPECT_EQ(report.at("tcp").sent, 20u);
    EXPECT_EQ(report.at("tcp").lost, 0u);
  }
}

TEST(EngineComponent, PacketsAreSpreadOverTheSendWindow) {
  Lab lab;
  std::vector<Nanos> sent_at;
  lab.link.set_responder([&](std::span<const uint8_t>) {
    sent_at.push_back(lab.clock.monotonic());
    return std::vector<ScriptedReply>{};
  });
  lab.run();
  ASSERT_EQ(sent_at.size(), 120u);
  // interval 10 s, timeout 1 s: 120 probes over 0.8 * 9 s = 7.2 s, i.e. one every 60 ms.
  EXPECT_EQ(sent_at.back() - sent_at.front(), milliseconds(60) * 119);
}

TEST(EngineComponent, TokensChangeEveryIterationAndCarryTheKeySlice) {
  Lab lab;
  std::vector<std::vector<uint8_t>> first, second;
  auto* sink = &first;
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    sink->emplace_back(p.begin(), p.end());
    return std::vector<ScriptedReply>{};
  });
  EngineOptions options;
  options.slice = KeySlice{2, 3};
  lab.run(options);
  sink = &second;
  lab.run(options);
  ASSERT_EQ(first.size(), second.size());
  size_t same = 0;
  for (size_t i = 0; i < first.size(); ++i) {
    const auto c = classify(first[i], Direction::kOutgoing);
    ASSERT_EQ(c.verdict, Verdict::kOwnProbe);
    const int bits = token_bits(c.key.type, c.key.target.af);
    EXPECT_EQ(c.key.token >> (bits - 2), 3u) << "top bits = worker index";
    same += classify(second[i], Direction::kOutgoing).key.token == c.key.token;
  }
  EXPECT_LT(same, 3u);
}

TEST(EngineComponent, SynAckToANonLocalSourceIsResetWithSeqIsnPlusOne) {
  // docs/netprobify-compatibility.md#d12-half-open-rst: where the source address is not ours, no kernel
  // answers the SYN-ACK with a RST, so netprobe closes the target's half-open connection itself, with the
  // sequence number it expects.
  Lab lab;
  lab.sources_local = false;
  std::vector<std::pair<uint32_t, uint32_t>> syns, rsts;  // (port, seq)
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    if (protocol_of(p) != 6) return std::vector<ScriptedReply>{};
    const size_t l4 = (p[0] >> 4) == 6 ? 40 : size_t(p[0] & 0x0f) * 4;
    const uint32_t seq =
        uint32_t(p[l4 + 4]) << 24 | uint32_t(p[l4 + 5]) << 16 | uint32_t(p[l4 + 6]) << 8 | p[l4 + 7];
    const uint32_t sport = uint32_t(p[l4]) << 8 | p[l4 + 1];
    if (p[l4 + 13] == 0x04) {
      rsts.push_back({sport, seq});
      return std::vector<ScriptedReply>{};
    }
    syns.push_back({sport, seq});
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(100)}};
  });
  const auto report = by_target(lab.run());
  EXPECT_EQ(report.at("tcp").lost, 0u);
  ASSERT_EQ(syns.size(), 40u);
  ASSERT_EQ(rsts.size(), 40u);
  for (size_t i = 0; i < syns.size(); ++i) {
    EXPECT_EQ(rsts[i].first, syns[i].first);
    EXPECT_EQ(rsts[i].second, syns[i].second + 1);
  }
}

// Tokens designate a probe per destination, whatever the port: an answer carrying a probe's token back
// to another port is netprobify's port_mismatch, not an answer.
TEST(EngineComponent, AnswerToAnotherPortIsPortMismatchNotAnAnswer) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    auto r = testing::reply_to(p);
    if (protocol_of(r) == 6) {
      const size_t l4 = (r[0] >> 4) == 6 ? 40 : size_t(r[0] & 0x0f) * 4;
      r[l4 + 3] ^= 1;  // destination port: the probe's source port, plus or minus one (same group range)
    }
    return std::vector<ScriptedReply>{{r, microseconds(100)}};
  });
  const auto report = lab.run();
  std::map<std::string, uint64_t> mismatches;
  for (const auto& t : report.targets) mismatches[t.target] = t.port_mismatch;
  const auto groups = by_target(report);
  for (const char* tcp : {"tcp", "tcp6"}) {
    EXPECT_EQ(groups.at(tcp).lost, 20u) << tcp;
    EXPECT_EQ(mismatches.at(tcp), 20u) << tcp;
  }
  for (const char* other : {"icmp", "udp", "icmp6", "udp6"}) {
    EXPECT_EQ(groups.at(other).lost, 0u) << other;
    EXPECT_EQ(mismatches.at(other), 0u) << other;
  }
}

TEST(EngineComponent, LateThenAgainIsOneLateThenDuplicates) {
  Lab lab;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    auto r = testing::reply_to(p);
    return std::vector<ScriptedReply>{{r, milliseconds(1200)}, {r, milliseconds(1300)}};  // timeout is 1 s
  });
  for (const auto& [name, g] : by_target(lab.run())) {
    EXPECT_EQ(g.lost, 20u) << name;
    EXPECT_GT(g.duplicates, 0u) << name;
    EXPECT_LE(g.duplicates, g.late) << name
                                    << ": the first late answer of a probe is late, later ones duplicates";
  }
}

// Two targets on one address (two teams, one host) share its token space: every probe of both is told
// apart, and each target gets its own answers.
TEST(EngineComponent, TargetsSharingADestinationAreToldApart) {
  Lab lab;
  lab.add("icmp_again", ProbeType::kIcmpPing, "198.51.100.2", 0);
  lab.add("tcp_again", ProbeType::kTcpSyn, "198.51.100.1", 80);
  std::map<uint64_t, int> tokens;
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    const auto c = classify(p, Direction::kOutgoing);
    ++tokens[uint64_t(c.key.type) << 32 | c.key.token];
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(100)}};
  });
  const auto report = by_target(lab.run());
  for (const char* name : {"icmp", "icmp_again", "tcp", "tcp_again"}) {
    EXPECT_EQ(report.at(name).sent, 20u) << name;
    EXPECT_EQ(report.at(name).lost, 0u) << name;
    EXPECT_EQ(report.at(name).duplicates, 0u) << name;
  }
  for (const auto& [token, n] : tokens) EXPECT_EQ(n, 1) << "token " << token << " used twice";
}

// With many workers the slice bits leave few tokens per destination: probes beyond them are not sent
// (counted as send errors) instead of sharing a token. UDPunreachable over IPv4 has 16 bits: with 15
// slice bits, one probe per destination; TCPsyn's 18 bits leave 7.
TEST(EngineComponent, ProbesBeyondTheTokenSpaceAreNotSent) {
  Lab lab;
  size_t on_wire = 0;
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    ++on_wire;
    return std::vector<ScriptedReply>{{testing::reply_to(p), microseconds(100)}};
  });
  EngineOptions options;
  options.slice = KeySlice{15, 0};
  const auto report = lab.run(options);
  const auto groups = by_target(report);
  EXPECT_EQ(groups.at("udp").sent, 1u);
  EXPECT_EQ(groups.at("tcp").sent, 7u);
  EXPECT_EQ(groups.at("tcp6").sent, 7u);
  EXPECT_EQ(groups.at("udp6").sent, 20u);
  EXPECT_EQ(groups.at("icmp").sent, 20u);
  EXPECT_EQ(report.send_errors, (std::map<std::string, uint64_t>{{"no_token", 19u + 13u + 13u}}));
  EXPECT_EQ(on_wire, 1u + 7u + 7u + 20u + 20u + 20u);
  for (const auto& [name, g] : groups) EXPECT_EQ(g.lost, 0u) << name;
}

// Each probe is judged by its own target's timeout, also when a target with a longer one is probed in
// between (probes of both interleave in the send order).
TEST(EngineComponent, EachProbeHasItsOwnTargetsTimeout) {
  Lab lab;
  lab.config.targets.at("icmp").timeout_s = 0.2;
  lab.link.set_responder([](std::span<const uint8_t> p) {
    return std::vector<ScriptedReply>{{testing::reply_to(p), milliseconds(500)}};
  });
  for (const auto& [name, g] : by_target(lab.run())) {
    if (name == "icmp") {
      EXPECT_EQ(g.lost, 20u);
      EXPECT_GT(g.late, 0u);
    } else {
      EXPECT_EQ(g.lost, 0u) << name;
      EXPECT_EQ(g.rtts_s.size(), 20u) << name;
    }
  }
}

// The memory budget of issue 6 (at most 64 bytes per in-flight probe, plan included): what the runner
// keeps per probe (slot, token, ordinal index) and the plan's record. Sizes, not timings.
// The worker replaces its plan between iterations while the capture thread keeps running: once an
// iteration is reported, the engine must not read its plan again (it did, through the runner: a late
// reply after a new shard read freed memory).
TEST(EngineComponent, TheCaptureLetsGoOfThePlanWhenTheIterationEnds) {
  Lab lab;
  auto plan = std::make_unique<Plan>(lab.make_plan().value());
  IterationRunner runner(0x5eed);
  runner.prepare(*plan, 1);
  ASSERT_EQ(runner.probe_count(), plan->probes.size());
  runner.report();
  runner.finish();
  EXPECT_EQ(runner.probe_count(), 0u);
  // A reply arriving now (any shape) is ignored without touching the destroyed plan (ASan checks it).
  std::vector<uint8_t> late;
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    late = testing::reply_to(p);
    return std::vector<ScriptedReply>{};
  });
  lab.run();
  ASSERT_FALSE(late.empty());
  plan.reset();
  runner.on_packet(CapturedPacket{late, Nanos(1), Direction::kIncoming});
  EXPECT_EQ(runner.report().groups.size(), 0u);
}

TEST(EngineComponent, PerProbeStateStaysWithinBudget) {
  Lab lab;
  for (auto& [name, t] : lab.config.targets) t.nb_packets = 20000;  // 120,000 probes
  auto plan = lab.make_plan();
  ASSERT_TRUE(plan.ok());
  const size_t n = plan->probes.size();
  ASSERT_EQ(n, 120000u);
  IterationRunner runner(0x5eed);
  const auto tokens = runner.prepare(*plan, 1);
  ASSERT_EQ(tokens.size(), n);
  EXPECT_EQ(sizeof(PlannedProbe), 8u);
  const double runner_bytes = double(runner.memory_bytes()) / double(n);
  EXPECT_LE(runner_bytes, 24.5) << "16-byte slot + 4-byte token + 4-byte ordinal index, page rounding";
  EXPECT_LE(runner_bytes + double(plan->probes.capacity() * sizeof(PlannedProbe)) / double(n) + 8 /* RTT */,
            64.0);
}

TEST(EngineComponent, PreviousIterationsBookCostsEightBytesPerTcpProbe) {
  // docs/architecture.md#two-way-loss: what decodes the previous iteration's TCP tokens is bounded by its
  // TCP probes (a third of this plan), 8 bytes each, on top of the per-probe budget above.
  Lab lab;
  for (auto& [name, t] : lab.config.targets) t.nb_packets = 20000;  // 120,000 probes, 40,000 TCP
  auto plan = lab.make_plan();
  ASSERT_TRUE(plan.ok());
  const size_t n = plan->probes.size();
  IterationRunner runner(0x5eed);
  runner.prepare(*plan, 1);
  const double first = double(runner.memory_bytes()) / double(n);
  runner.finish();
  runner.prepare(*plan, 2);
  const double steady = double(runner.memory_bytes()) / double(n);
  EXPECT_LE(first, 24.5);
  EXPECT_LE(steady - first, 8.0 * 40000 / double(n) + 0.1);
}

// Captured packets are untrusted: replies with flipped bits anywhere (tokens, ports, addresses, lengths)
// go through classify() and the token decoding. Nothing may crash (the ASan/UBSan build runs this too),
// and no probe may be counted twice: every probe is either answered by its true reply or lost.
TEST(EngineComponent, CorruptedRepliesNeverCountTwice) {
  Lab lab;
  std::mt19937 rng(12345);
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    std::vector<ScriptedReply> out;
    const auto reply = testing::reply_to(p);
    for (int k = 0; k < 20; ++k) {  // bounded: 20 corrupted copies per probe
      auto bad = reply;
      const int flips = 1 + int(rng() % 4);
      for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8));
      if (rng() % 4 == 0) bad.resize(rng() % bad.size());  // truncated
      out.push_back({bad, microseconds(50 + k)});
    }
    if (rng() % 2) out.push_back({reply, microseconds(100)});  // half the probes get their true reply
    return out;
  });
  const auto report = lab.run();
  uint64_t sent = 0, lost = 0, answered = 0;
  for (const auto& g : report.groups) {
    sent += g.sent;
    lost += g.lost;
    answered += g.rtts_s.size() + g.time_ooo;
    EXPECT_EQ(g.rtts_s.size() + g.time_ooo + g.lost, g.sent) << g.target;
  }
  EXPECT_EQ(sent, 120u);
  EXPECT_EQ(answered + lost, 120u);
  // A corrupted copy whose flips all fell in fields matching does not read (checksums, TTL, payload, ...)
  // is the true reply as far as anyone can tell: it answers, and the copies after it are duplicates.
  uint64_t duplicates = 0;
  for (const auto& g : report.groups) duplicates += g.duplicates;
  EXPECT_GT(duplicates, 0u);
  EXPECT_GT(answered, 0u);
}

// ---- Two-way loss (docs/architecture.md#two-way-loss) ----------------------------------------------

struct TcpFields {
  size_t l4 = 0;
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0;
  uint8_t flags = 0;
};
TcpFields tcp_fields(std::span<const uint8_t> p) {
  TcpFields f;
  f.l4 = (p[0] >> 4) == 6 ? 40 : size_t(p[0] & 0x0f) * 4;
  f.sport = uint16_t(p[f.l4] << 8 | p[f.l4 + 1]);
  f.dport = uint16_t(p[f.l4 + 2] << 8 | p[f.l4 + 3]);
  f.seq =
      uint32_t(p[f.l4 + 4]) << 24 | uint32_t(p[f.l4 + 5]) << 16 | uint32_t(p[f.l4 + 6]) << 8 | p[f.l4 + 7];
  f.flags = p[f.l4 + 13];
  return f;
}
// What a half-open connection sends to an out-of-window SYN: a pure ACK of the SYN that opened it.
std::vector<uint8_t> pure_ack_to(std::span<const uint8_t> syn, uint32_t ack) {
  auto r = testing::reply_to(syn);  // SYN-ACK from the probe's destination and port to its source
  const size_t l4 = (r[0] >> 4) == 6 ? 40 : size_t(r[0] & 0x0f) * 4;
  r[l4 + 8] = uint8_t(ack >> 24);
  r[l4 + 9] = uint8_t(ack >> 16);
  r[l4 + 10] = uint8_t(ack >> 8);
  r[l4 + 11] = uint8_t(ack);
  r[l4 + 13] = 0x10;  // ACK only (classify() does not check checksums: the token authenticates)
  return r;
}

// A target that keeps a half-open connection per 4-tuple the way Linux does (tcp_check_req): the first SYN
// opens it and gets a SYN-ACK; a later SYN with another seq is out of window and gets a pure ACK of the
// first one; a RST whose seq is the first SYN's seq + 1 closes it. Every RST sent to it is lost when
// `lose_rsts` (the prober kernel's one, for a local source, is not modelled: it is lost too).
struct HalfOpenTarget {
  bool lose_rsts = true;
  std::map<std::pair<std::vector<uint8_t>, uint16_t>, uint32_t> open;  // (dst bytes, sport) -> SYN seq
  std::vector<TcpFields> rsts;
  std::vector<ScriptedReply> operator()(std::span<const uint8_t> p) {
    if (protocol_of(p) != 6) return {};
    const TcpFields f = tcp_fields(p);
    const size_t dst = (p[0] >> 4) == 6 ? 24 : 16, len = (p[0] >> 4) == 6 ? 16 : 4;
    const auto key =
        std::make_pair(std::vector<uint8_t>(p.begin() + long(dst), p.begin() + long(dst + len)), f.sport);
    if (f.flags == 0x04) {
      rsts.push_back(f);
      auto it = open.find(key);
      if (!lose_rsts && it != open.end() && f.seq == it->second + 1) open.erase(it);
      return {};
    }
    auto it = open.find(key);
    if (it == open.end()) {
      open[key] = f.seq;
      return {{testing::reply_to(p), microseconds(100)}};
    }
    return {{pure_ack_to(p, it->second + 1), microseconds(70)}};
  }
};

TEST(EngineComponent, PureAckOfAnEarlierProbeOnTheSame4TupleAnswersTheNewProbe) {
  // Every RST is lost: after the first probe on each of the 4 ports, the target answers every later SYN
  // on that 4-tuple with a pure ACK of the first. Each of those proves its SYN arrived: no loss, and the
  // RTT is that of the ACK. netprobe resets the half-open connection with seq = the ack.
  for (bool local : {true, false}) {
    SCOPED_TRACE(local ? "local source" : "foreign source");
    Lab lab;
    lab.sources_local = local;
    HalfOpenTarget target;
    lab.link.set_responder([&](std::span<const uint8_t> p) { return target(p); });
    const auto report = by_target(lab.run());
    for (const char* name : {"tcp", "tcp6"}) {
      const GroupMeasurement& g = report.at(name);
      EXPECT_EQ(g.sent, 20u) << name;
      EXPECT_EQ(g.lost, 0u) << name;
      ASSERT_EQ(g.rtts_s.size(), 20u) << name;
      size_t acked = 0;
      for (double rtt : g.rtts_s) acked += std::abs(rtt - 70e-6) < 1e-9;
      EXPECT_EQ(acked, 16u) << name << ": 4 SYN-ACKs, then 16 pure ACKs";
      EXPECT_EQ(g.duplicates + g.late, 0u) << name;
    }
    // Per TCP target: 16 stale connections proven, kStaleResetCopies RSTs each, all with seq = the first
    // SYN's seq + 1 on the same port; with a foreign source also the 4 RSTs of the SYN-ACKs.
    size_t stale = 0;
    for (const auto& r : target.rsts) {
      bool of_first = false;
      for (const auto& [key, seq] : target.open) of_first |= key.second == r.sport && r.seq == seq + 1;
      stale += of_first;
    }
    EXPECT_EQ(target.rsts.size(), 2 * (16 * size_t(IterationRunner::kStaleResetCopies) + (local ? 0 : 4)));
    EXPECT_EQ(stale, target.rsts.size());
  }
}

TEST(EngineComponent, ResetHalfOpenConnectionGivesSynAckAgain) {
  // When the RSTs arrive, the target is clean again: every probe gets a SYN-ACK and nothing is lost.
  Lab lab;
  lab.sources_local = false;  // netprobe's RSTs are the only ones
  HalfOpenTarget target;
  target.lose_rsts = false;
  lab.link.set_responder([&](std::span<const uint8_t> p) { return target(p); });
  const auto report = by_target(lab.run());
  EXPECT_EQ(report.at("tcp").lost, 0u);
  EXPECT_EQ(report.at("tcp6").lost, 0u);
  EXPECT_TRUE(target.open.empty()) << "every half-open connection was reset";
  for (const char* name : {"tcp", "tcp6"})
    for (double rtt : report.at(name).rtts_s) EXPECT_NEAR(rtt, 100e-6, 1e-9) << name << ": SYN-ACKs only";
}

TEST(EngineComponent, PureAckOfThePreviousIterationsProbeAnswersToo) {
  // The half-open connections of iteration 1 are still there in iteration 2 (new tokens): the first
  // probe of each 4-tuple in iteration 2 is answered by a pure ACK of an iteration-1 SYN.
  Lab lab;
  HalfOpenTarget target;
  lab.link.set_responder([&](std::span<const uint8_t> p) { return target(p); });
  const auto reports = lab.runs(2);
  for (const auto& report : reports) {
    const auto g = by_target(report);
    EXPECT_EQ(g.at("tcp").lost, 0u);
    EXPECT_EQ(g.at("tcp6").lost, 0u);
  }
  size_t acked = 0;
  const auto second = by_target(reports[1]);
  for (double rtt : second.at("tcp").rtts_s) acked += std::abs(rtt - 70e-6) < 1e-9;
  EXPECT_EQ(acked, 20u) << "every probe of iteration 2 meets a half-open connection of iteration 1";
}

TEST(EngineComponent, PureAcksThatProveNothingNeverCount) {
  // The target never answers; a forger sends, for every SYN, pure ACKs from the target's address and port
  // with: a random ack; the ack of the probe itself (not an earlier one); the ack of an earlier probe on
  // another port (another 4-tuple); an earlier probe's ack from another remote port. None proves the
  // probe arrived: every TCP probe is lost.
  Lab lab;
  std::mt19937 rng(99);
  std::map<std::pair<size_t, uint16_t>, uint32_t> first_seq;  // (family, port) -> seq of its first SYN
  lab.link.set_responder([&](std::span<const uint8_t> p) {
    std::vector<ScriptedReply> out;
    if (protocol_of(p) != 6) return out;
    const TcpFields f = tcp_fields(p);
    if (f.flags != 0x02) return out;
    const size_t fam = p[0] >> 4;
    first_seq.try_emplace({fam, f.sport}, f.seq);
    for (int k = 0; k < 50; ++k) out.push_back({pure_ack_to(p, uint32_t(rng())), microseconds(10 + k)});
    for (int k = 0; k < 50; ++k)  // shaped like an answer: ack - 1 has zero low bits
      out.push_back({pure_ack_to(p, (uint32_t(rng()) << kTcpSeqShift) + 1), microseconds(60 + k)});
    out.push_back({pure_ack_to(p, f.seq + 1), microseconds(120)});
    const uint16_t other = f.sport == 65000 ? 65001 : 65000;
    if (auto it = first_seq.find({fam, other}); it != first_seq.end())
      out.push_back({pure_ack_to(p, it->second + 1), microseconds(130)});
    if (auto it = first_seq.find({fam, f.sport}); it != first_seq.end() && it->second != f.seq) {
      auto wrong_port = pure_ack_to(p, it->second + 1);
      const size_t l4 = (wrong_port[0] >> 4) == 6 ? 40 : size_t(wrong_port[0] & 0x0f) * 4;
      wrong_port[l4 + 1] ^= 1;  // the target's port: another service on the same address
      out.push_back({wrong_port, microseconds(140)});
    }
    return out;
  });
  const auto report = lab.run();
  const auto g = by_target(report);
  EXPECT_EQ(g.at("tcp").lost, 20u);
  EXPECT_EQ(g.at("tcp6").lost, 20u);
  ASSERT_TRUE(report.rejected.count("unproven_ack"));
  EXPECT_GT(report.rejected.at("unproven_ack"), 2u * 20u * 100u / 2);
}

namespace forging {

// The reply a forger would build for the lab's destination `dst` and our source, with the token fields
// left for patching: produced by answering a probe crafted here (with a token of our own choosing, so
// nothing of the engine's leaks into it).
std::vector<uint8_t> reply_shape(ProbeType type, const char* dst, const char* src, uint16_t dst_port) {
  ProbeParams params;
  params.dst = *IpAddress::parse(dst);
  params.af = params.dst.af;
  params.src = *IpAddress::parse(src);
  params.dst_port = dst_port;
  const Probe& probe = probe_for(type);
  const PacketTemplate t = probe.make_template(params);
  std::vector<uint8_t> p(t.bytes.size());
  p.resize(probe.craft(t, PacketFields{params.src, 65000, 0x12345678}, p));
  return testing::reply_to(p);
}

size_t l4_of(std::span<const uint8_t> p) { return (p[0] >> 4) == 6 ? 40 : size_t(p[0] & 0x0f) * 4; }

}  // namespace forging

// docs/matching.md#guessed-bits: a blind forger who knows the addresses and the one source port sweeps the
// token field it can reach within one timeout (2^16 candidates per type and family: every IP-ID, every
// echo id, every TCP index with a guessed check part, every IPv6 UDP index) against dead targets. Before
// the check bits, the UDP IP-ID sweep answered every probe and the TCP sweep about a third. Nothing may
// count: loss stays 100 %, no RTT is invented, and every forged reply is counted as rejected.
TEST(EngineComponent, BlindForgerSweepingTheTokenSpaceChangesNothing) {
  Lab lab;
  lab.config.groups["g"].src_port_z = 65000;  // one source port, which the forger knows
  for (auto& [name, t] : lab.config.targets) {
    t.nb_packets = 4;
    t.timeout_s = 1;
  }
  lab.config.global.interval_s = 2;  // all probes leave within 0.8 s, none expires before 1 s
  std::mt19937 rng(42);
  const Nanos at = lab.clock.realtime() + milliseconds(900);
  uint64_t forged = 0;
  auto spray = [&](std::vector<uint8_t> base, auto patch) {
    for (uint32_t i = 0; i < 65536; ++i) {
      std::vector<uint8_t> p = base;
      patch(p, i, rng());
      lab.link.inject(std::move(p), at);
      ++forged;
    }
  };
  using forging::l4_of;
  for (const auto& [dst, src] : {std::pair{"198.51.100.1", "192.0.2.10"}, {"2001:db8::1", "2001:db8:ff::10"}})
    // SYN-ACKs: index i << 2 (2^16 of the 2^18 indexes), a random guess of the 14 check bits.
    spray(forging::reply_shape(ProbeType::kTcpSyn, dst, src, 80), [](auto& p, uint32_t i, uint32_t r) {
      wire::store_be32(p.data() + l4_of(p) + 8, ((i << 2) << kTcpSeqShift | (r & 0x3fff)) + 1);
    });
  for (const auto& [dst, src] : {std::pair{"198.51.100.2", "192.0.2.10"}, {"2001:db8::2", "2001:db8:ff::10"}})
    // Echo replies: every id, a random seq.
    spray(forging::reply_shape(ProbeType::kIcmpPing, dst, src, 0), [](auto& p, uint32_t i, uint32_t r) {
      wire::store_be16(p.data() + l4_of(p) + 4, uint16_t(i));
      wire::store_be16(p.data() + l4_of(p) + 6, uint16_t(r));
    });
  // Port unreachable, IPv4: every quoted IP-ID, a random quoted UDP checksum.
  spray(forging::reply_shape(ProbeType::kUdpUnreachable, "198.51.100.3", "192.0.2.10", 33434),
        [](auto& p, uint32_t i, uint32_t r) {
          wire::store_be16(p.data() + 20 + 8 + 4, uint16_t(i));
          wire::store_be16(p.data() + 20 + 8 + 20 + 6, uint16_t(r | 1));
        });
  // Port unreachable, IPv6: the quoted payload word, index i << 4 (2^16 of the 2^20), random check bits.
  spray(forging::reply_shape(ProbeType::kUdpUnreachable, "2001:db8::3", "2001:db8:ff::10", 33434),
        [](auto& p, uint32_t i, uint32_t r) {
          wire::store_be32(p.data() + 40 + 8 + 40 + 8, (i << 4) << 12 | (r & 0xfff));
        });
  const auto raw = lab.run();
  for (const auto& [name, g] : by_target(raw)) {
    EXPECT_EQ(g.sent, 4u) << name;
    EXPECT_EQ(g.lost, 4u) << name;
    EXPECT_TRUE(g.rtts_s.empty()) << name;
    EXPECT_EQ(g.time_ooo, 0u) << name;
  }
  uint64_t rejected = 0;
  for (const auto& [reason, n] : raw.rejected) rejected += n;
  EXPECT_EQ(rejected, forged);
  EXPECT_GT(raw.rejected.count("wrong_token") ? raw.rejected.at("wrong_token") : 0, 0u)
      << "some forged replies hit a probe's index: their check part is what stopped them";
}

// Issue 10 defect 6: an ICMP error counts against our probe only if its quote is our probe as it left:
// from our source address and port, to the target's port, with the whole token.
TEST(EngineComponent, IcmpErrorsWhoseQuoteIsNotOurProbeAreNotCounted) {
  struct Case {
    const char* what;
    std::function<void(std::vector<uint8_t>&)> damage;  // applied to the probe before it is quoted
  };
  const std::vector<Case> cases = {
      {"quoted source address is another host's", [](auto& p) { p[(p[0] >> 4) == 6 ? 23 : 15] ^= 0x40; }},
      {"quoted destination port differs",
       [](auto& p) {
         if (protocol_of(p) != 1 && protocol_of(p) != 58)
           p[forging::l4_of(p) + 3] ^= 1;
         else
           p[(p[0] >> 4) == 6 ? 23 : 15] ^= 0x40;  // echo has no port: the source instead
       }},
      {"quoted check bits differ",
       [](auto& p) {
         const size_t l4 = forging::l4_of(p);
         if (protocol_of(p) == 6)
           p[l4 + 7] ^= 1;  // low seq bit
         else if (protocol_of(p) == 17)
           p[(p[0] >> 4) == 6 ? l4 + 11 : l4 + 7] ^= 1;  // payload word / checksum
         else
           p[l4 + 7] ^= 1;  // echo seq: part of the index, so this is another (unsent) probe
       }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Lab lab;
    lab.link.set_responder([&](std::span<const uint8_t> p) {
      std::vector<uint8_t> quoted(p.begin(), p.end());
      c.damage(quoted);
      const bool v6 = (p[0] >> 4) == 6;
      // UDP gets its natural answer (port unreachable), the others a host unreachable.
      auto r = protocol_of(p) == 17
                   ? testing::reply_to(quoted)
                   : testing::reply_to(quoted, ReplyKind::kIcmpError, v6 ? 1 : 3, v6 ? 3 : 1);
      // Delivered to our real address, whatever the quote says.
      std::copy(p.begin() + (v6 ? 8 : 12), p.begin() + (v6 ? 24 : 16), r.begin() + (v6 ? 24 : 16));
      return std::vector<ScriptedReply>{{r, microseconds(90)}};
    });
    const auto raw = lab.run();
    for (const auto& [name, g] : by_target(raw)) {
      EXPECT_EQ(g.lost, 20u) << name;
      EXPECT_TRUE(g.icmp_errors.empty()) << name;
    }
    uint64_t rejected = 0;
    for (const auto& [reason, n] : raw.rejected) rejected += n;
    EXPECT_EQ(rejected, 120u);
  }
}

}  // namespace
}  // namespace netprobe
