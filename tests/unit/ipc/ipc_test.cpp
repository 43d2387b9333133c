// Supervisor <-> worker messages: every field survives a round trip, frames reassemble from arbitrary
// pieces, and malformed input is an Error, never an exception or a crash.
#include <gtest/gtest.h>

#include <functional>
#include <tuple>

#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <thread>

#include "config/config_fields.h"
#include "ipc/ipc.h"

namespace netprobe {
namespace {

std::span<const uint8_t> payload_of(const std::string& frame) {
  return {reinterpret_cast<const uint8_t*>(frame.data()) + 4, frame.size() - 4};
}

// Every field set to something other than its default, so that a forgotten field fails the test.
Config full_config() {
  Config c;
  c.source_path = "/etc/netprobe/netprobe.yaml";
  c.global.probe_name = "par1";
  c.global.interval_s = 30;
  c.global.interval_packets_s = 0.001;
  c.global.nb_proc = 4;
  c.global.verbose = 1;
  c.global.logging_level = "DEBUG";
  c.global.prometheus_port = 8000;
  c.global.prometheus_address = "::1";
  c.global.dns_update_interval_s = 300;
  c.global.reload_conf_interval_s = 60;
  c.global.l3_raw_socket = true;
  c.global.timeout_s = 12.5;
  c.global.percentile = {99, 50, 1};
  c.global.disable_dynamic_inventories = {"cmdb"};
  c.global.max_packets_per_second = 50000;
  c.global.inventory_dir = "inventories.d";
  GroupConfig g;
  g.name = "transit";
  g.src_ipv4 = IpAddress::parse("192.0.2.1");
  g.src_ipv6 = IpAddress::parse("2001:db8::1");
  g.src_subnet_ipv4 = IpNetwork::parse("192.0.2.0/28");
  g.src_subnet_ipv6 = IpNetwork::parse("2001:db8::/124");
  g.src_port_a = 60000;
  g.src_port_z = 60099;
  g.ip_payload_size = 100;
  g.dscp = 46;
  g.permit_target_auto_register = false;
  c.groups[g.name] = g;
  GroupConfig plain;
  plain.name = "plain";
  c.groups[plain.name] = plain;
  TargetConfig t;
  t.name = "web";
  t.description = "the web tier";
  t.type = ProbeType::kUdpUnreachable;
  t.destination = "web.example";
  t.address_family = AddressFamily::kV6;
  t.dont_fragment = false;
  t.is_subnet = false;
  t.dst_port = 33434;
  t.nb_packets = 20;
  t.ip_payload_size = 64;
  t.threshold.latency = 0.01;
  t.threshold.loss = 0.05;
  t.alert_level = AlertLevel::kPagingValidation;
  t.state = "in production";
  t.timeout_s = 0.5;
  t.dns_update_interval_s = 30;
  t.auto_register_to_groups = false;
  t.register_to = {"transit"};
  t.exclude_from = {"plain"};
  t.groups = {"transit"};
  t.is_dynamic = true;
  c.targets[t.name] = t;
  TargetConfig s;
  s.name = "rack";
  s.type = ProbeType::kIcmpPing;
  s.destination = "10.0.0.0/29";
  s.is_subnet = true;
  s.groups = {"plain", "transit"};
  // UDPquery's keys (not valid on ICMPping for the loader; the IPC carries whatever the struct holds).
  s.payload = "hex:0000 0100";
  s.expect_kind = "regex";
  s.expect_value = "^x";
  s.token_offset = 1;
  s.token_length = 2;
  s.token_reply_offset = 3;
  c.targets[s.name] = s;
  return c;
}

// The fixture sets every listed field (config/config_fields.h) away from its default in at least one of
// `objects`, so that a field lost on the way to the workers cannot hide behind a default value.
template <typename S>
void expect_every_field_set(std::initializer_list<const S*> objects) {
  const S defaults{};
  int i = 0;
  for_each_field(defaults, [&](const char* name, const auto&) {
    bool set = false;
    for (const S* full : objects) {
      S one = defaults;  // the defaults with only field i taken from `full`
      int j = 0;
      for_each_field(*full, [&](const char*, const auto& value) {
        if (j++ != i) return;
        int k = 0;
        for_each_field(one, [&](const char*, auto& field) {
          if constexpr (std::is_same_v<std::remove_cvref_t<decltype(field)>,
                                       std::remove_cvref_t<decltype(value)>>) {
            if (k == i) field = value;
          }
          ++k;
        });
      });
      set = set || !(one == defaults);
    }
    ++i;
    EXPECT_TRUE(set) << name << " keeps its default value in the fixture";
  });
}

TEST(worker_Ipc, TheFixtureSetsEveryConfigurationField) {
  const Config c = full_config();
  expect_every_field_set({&c.global});
  expect_every_field_set({&c.groups.at("transit")});
  expect_every_field_set({&c.targets.at("web"), &c.targets.at("rack")});
  expect_every_field_set({&c.targets.at("web").threshold});
}

void expect_same(const Config& a, const Config& b) {
  EXPECT_TRUE(a == b);  // every member, by the structs' defaulted operator==
  // Compared through the document: it lists every field, and config_test covers the struct itself.
  EXPECT_EQ(to_json_document(a).dump(), to_json_document(b).dump());
  EXPECT_EQ(a.targets.size(), b.targets.size());
  EXPECT_EQ(a.groups.size(), b.groups.size());
  const auto& t = b.targets.at("web");
  EXPECT_EQ(t.address_family, AddressFamily::kV6);
  EXPECT_EQ(t.dst_port, 33434);
  EXPECT_EQ(t.threshold.loss, 0.05);
  EXPECT_EQ(t.alert_level, AlertLevel::kPagingValidation);
  EXPECT_EQ(t.state, "in production");
  EXPECT_TRUE(t.is_dynamic);
  EXPECT_EQ(b.groups.at("transit").src_subnet_ipv6->to_string(), "2001:db8::/124");
  EXPECT_EQ(b.groups.at("transit").src_ipv4, IpAddress::parse("192.0.2.1"));
  EXPECT_FALSE(b.groups.at("plain").src_ipv4.has_value());
  EXPECT_EQ(b.global.percentile, (std::vector<int>{99, 50, 1}));
  EXPECT_EQ(b.global.max_packets_per_second, 50000);
}

TEST(worker_Ipc, ShardRoundTrip) {
  Shard s;
  s.generation = 42;
  s.index = 3;
  s.slice = KeySlice{2, 3};
  s.secret = 0xfedcba9876543210ULL;  // above 2^63: must stay unsigned
  s.settings.interval_s = 30;
  s.settings.max_packets_per_second = 1234.5;
  s.settings.hard_timeout = Nanos(12'500'000'000);
  s.config = full_config();
  s.hosts["web"] = {*IpAddress::parse("2001:db8::80")};
  const std::string frame = encode_frame(SupervisorMessage{s});
  auto back = decode_supervisor_message(payload_of(frame));
  ASSERT_TRUE(back.ok()) << back.error().message;
  const Shard& r = std::get<Shard>(*back);
  EXPECT_EQ(r.generation, 42u);
  EXPECT_EQ(r.index, 3u);
  EXPECT_EQ(r.slice, (KeySlice{2, 3}));
  EXPECT_EQ(r.secret, 0xfedcba9876543210ULL);
  EXPECT_EQ(r.settings.interval_s, 30);
  EXPECT_EQ(r.settings.max_packets_per_second, 1234.5);
  EXPECT_EQ(r.settings.hard_timeout, Nanos(12'500'000'000));
  expect_same(s.config, r.config);
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts.at("web"), s.hosts.at("web"));
}

// The supervisor-only fields (config/config_fields.h) stay in the supervisor: the workers' copy has their
// defaults, and the document has no key for them.
TEST(worker_Ipc, SupervisorOnlyFieldsDoNotTravel) {
  Config c = full_config();
  c.global.rtt_histogram = RttHistogram::kNone;
  c.global.path_window = 9;
  c.global.path_series_per_target = 2;
  const Config defaults;
  int fields = 0;
  for_each_supervisor_only_field(c.global, [&](const char* name, const auto&) {
    ++fields;
    EXPECT_FALSE(to_json_document(c).at("global").contains(name)) << name;
  });
  EXPECT_EQ(fields, kSupervisorOnlyGlobalFields);
  c.targets.at("web").tags = {"front", "web"};
  fields = 0;
  for_each_supervisor_only_field(c.targets.at("web"), [&](const char* name, const auto&) {
    ++fields;
    EXPECT_EQ(to_json_document(c).dump().find(std::string("\"") + name + "\""), std::string::npos) << name;
  });
  EXPECT_EQ(fields, kSupervisorOnlyTargetFields);
  Shard s;
  s.config = c;
  auto back = decode_supervisor_message(payload_of(encode_frame(SupervisorMessage{s})));
  ASSERT_TRUE(back.ok()) << back.error().message;
  const Config& r = std::get<Shard>(*back).config;
  EXPECT_EQ(r.global.rtt_histogram, defaults.global.rtt_histogram);
  Config expected = c;
  expected.global.rtt_histogram = defaults.global.rtt_histogram;
  expected.global.path_window = defaults.global.path_window;
  expected.global.path_series_per_target = defaults.global.path_series_per_target;
  expected.targets.at("web").tags.clear();
  expect_same(expected, r);  // and everything else did travel
}

TEST(worker_Ipc, NoTimeoutSurvives) {
  Shard s;
  s.settings.hard_timeout = Nanos::max();
  auto back = decode_supervisor_message(payload_of(encode_frame(SupervisorMessage{s})));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(std::get<Shard>(*back).settings.hard_timeout, Nanos::max());
}

TEST(worker_Ipc, StopRoundTrip) {
  auto back = decode_supervisor_message(payload_of(encode_frame(SupervisorMessage{StopRequest{}})));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(std::holds_alternative<StopRequest>(*back));
}

IterationReport full_report() {
  IterationReport r;
  GroupMeasurement g;
  g.target = "web";
  g.group = "transit";
  g.type = ProbeType::kTcpSyn;
  g.af = AddressFamily::kV6;
  g.state = "validation";
  g.sent = 1000;
  g.lost = 7;
  g.rtts_s = {0.000123456789, 1e-9, 2.5, std::numeric_limits<double>::denorm_min()};
  g.time_ooo = 2;
  g.late = 3;
  g.duplicates = 4;
  g.icmp_errors = {{"unreachable:1", 5}, {"time_exceeded:0", 6}};
  FlowMeasurement f;
  f.src = 1;
  f.dst = 0;
  f.src_port = 40001;
  f.sent = 600;
  f.lost = 7;
  f.late = 1;
  f.rtt_count = 590;
  f.rtt_sum_s = 0.0123456789;
  g.flows = {f, f};
  g.flow_destinations = {*IpAddress::parse("2001:db8::1")};
  g.flows[1].src_port = 40002;
  g.flows[1].sent = 400;
  g.flows[1].lost = g.flows[1].late = g.flows[1].rtt_count = 0;
  g.flows[1].rtt_sum_s = 0;
  r.groups.push_back(g);
  GroupMeasurement empty;
  empty.target = "idle";
  r.groups.push_back(empty);
  r.targets.push_back(TargetEvents{"web", ProbeType::kTcpSyn, AddressFamily::kV6, 8, 9});
  r.duration_s = 1.75;
  r.send_window_s = 0.5;
  r.capture_received = 10;
  r.capture_dropped = 11;
  r.capture_if_dropped = 12;
  r.rejected = {{"not_a_reply", 13}};
  r.send_errors = {{"unreachable", 14}};
  r.timed_out = true;
  r.sources = {*IpAddress::parse("192.0.2.10"), *IpAddress::parse("2001:db8::10")};
  return r;
}

TEST(worker_Ipc, ReportRoundTripIsExact) {
  const IterationReport r = full_report();
  auto back = decode_worker_message(payload_of(encode_frame(WorkerMessage{WorkerReport{7, r}})));
  ASSERT_TRUE(back.ok()) << back.error().message;
  const auto& m = std::get<WorkerReport>(*back);
  EXPECT_EQ(m.generation, 7u);
  const IterationReport& b = m.report;
  ASSERT_EQ(b.groups.size(), 2u);
  const auto& g = b.groups[0];
  EXPECT_EQ(g.target, "web");
  EXPECT_EQ(g.group, "transit");
  EXPECT_EQ(g.type, ProbeType::kTcpSyn);
  EXPECT_EQ(g.af, AddressFamily::kV6);
  EXPECT_EQ(g.state, "validation");
  EXPECT_EQ(g.sent, 1000u);
  EXPECT_EQ(g.lost, 7u);
  EXPECT_EQ(g.rtts_s, r.groups[0].rtts_s);  // bit-exact: packed float64
  EXPECT_EQ(g.time_ooo, 2u);
  EXPECT_EQ(g.late, 3u);
  EXPECT_EQ(g.duplicates, 4u);
  EXPECT_EQ(g.icmp_errors, r.groups[0].icmp_errors);
  ASSERT_EQ(g.flows.size(), 2u);
  EXPECT_EQ(g.flow_destinations, r.groups[0].flow_destinations);
  EXPECT_EQ(b.sources, r.sources);
  for (size_t i = 0; i < 2; ++i) {
    const FlowMeasurement &x = g.flows[i], &y = r.groups[0].flows[i];
    EXPECT_EQ(x.src, y.src);
    EXPECT_EQ(x.dst, y.dst);
    EXPECT_EQ(x.src_port, y.src_port);
    EXPECT_EQ(std::tuple(x.sent, x.lost, x.late, x.rtt_count),
              std::tuple(y.sent, y.lost, y.late, y.rtt_count));
    EXPECT_EQ(x.rtt_sum_s, y.rtt_sum_s);
  }
  EXPECT_TRUE(b.groups[1].rtts_s.empty());
  EXPECT_EQ(b.groups[1].state, "None");
  ASSERT_EQ(b.targets.size(), 1u);
  EXPECT_EQ(b.targets[0].match_ack_fail, 8u);
  EXPECT_EQ(b.targets[0].port_mismatch, 9u);
  EXPECT_EQ(b.duration_s, 1.75);
  EXPECT_EQ(b.send_window_s, 0.5);
  EXPECT_EQ(b.capture_received, 10u);
  EXPECT_EQ(b.capture_dropped, 11u);
  EXPECT_EQ(b.capture_if_dropped, 12u);
  EXPECT_EQ(b.rejected, r.rejected);
  EXPECT_EQ(b.send_errors, r.send_errors);
  EXPECT_TRUE(b.timed_out);
}

TEST(worker_Ipc, ReadyAndErrorRoundTrip) {
  auto ready =
      decode_worker_message(payload_of(encode_frame(WorkerMessage{WorkerReady{2, {"small buffer"}}})));
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(std::get<WorkerReady>(*ready).index, 2u);
  EXPECT_EQ(std::get<WorkerReady>(*ready).warnings, std::vector<std::string>{"small buffer"});
  auto error =
      decode_worker_message(payload_of(encode_frame(WorkerMessage{WorkerError{"no route", {"a", "b"}}})));
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(std::get<WorkerError>(*error).message, "no route");
  EXPECT_EQ(std::get<WorkerError>(*error).inactive_targets, (std::vector<std::string>{"a", "b"}));
}

TEST(worker_Ipc, LargeReportUsesPackedRtts) {
  IterationReport r;
  GroupMeasurement g;
  g.target = "big";
  for (int i = 0; i < 100000; ++i) g.rtts_s.push_back(i * 1e-6);
  r.groups.push_back(g);
  const std::string frame = encode_frame(WorkerMessage{WorkerReport{1, r}});
  EXPECT_LT(frame.size(), 100000 * 8 + 1000);  // ~8 bytes per RTT, not a printed decimal
  auto back = decode_worker_message(payload_of(frame));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<WorkerReport>(*back).report.groups[0].rtts_s, g.rtts_s);
}

TEST(worker_Ipc, MalformedInputIsAnError) {
  const std::vector<uint8_t> garbage{0xff, 0x00, 0x13, 0x37};
  EXPECT_FALSE(decode_worker_message(garbage).ok());
  EXPECT_FALSE(decode_supervisor_message(garbage).ok());
  EXPECT_FALSE(decode_worker_message({}).ok());
  auto cbor = [](const nlohmann::json& j) { return nlohmann::json::to_cbor(j); };
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "unknown"}})).ok());
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}})).ok());
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "ready"}, {"index", "x"}, {"warnings", {}}})).ok());
  EXPECT_FALSE(decode_worker_message(cbor(nlohmann::json::array({1, 2}))).ok());
  // A report whose RTT bytes are not a whole number of float64.
  auto doc = to_json_document(full_report());
  doc["groups"][0][kGroupRtts] = nlohmann::json::binary({1, 2, 3});
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}, {"generation", 1}, {"report", doc}})).ok());
  // A bad probe type and a bad address family.
  doc = to_json_document(full_report());
  doc["groups"][0][kGroupType] = "PINGv7";
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}, {"generation", 1}, {"report", doc}})).ok());
  doc = to_json_document(full_report());
  doc["groups"][0][kGroupAf] = 5;
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}, {"generation", 1}, {"report", doc}})).ok());
  // Rows of the wrong shape: an object (the old layout), a field missing, a field too many.
  doc = to_json_document(full_report());
  doc["groups"][0] = nlohmann::json{{"target", "a"}};
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}, {"generation", 1}, {"report", doc}})).ok());
  doc = to_json_document(full_report());
  doc["groups"][0].erase(kGroupIcmpErrors);
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}, {"generation", 1}, {"report", doc}})).ok());
  doc = to_json_document(full_report());
  doc["targets"][0].push_back(1);
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}, {"generation", 1}, {"report", doc}})).ok());
  // Flow records: a partial record, and counts that do not add up (a worker parses hostile packets).
  doc = to_json_document(full_report());
  doc["groups"][0][kGroupFlows] = nlohmann::json::binary({1, 2, 3});
  EXPECT_FALSE(decode_worker_message(cbor({{"type", "report"}, {"generation", 1}, {"report", doc}})).ok());
  for (auto bad : std::vector<std::function<void(FlowMeasurement&)>>{
           [](FlowMeasurement& f) { f.lost = f.sent + 1; }, [](FlowMeasurement& f) { f.late = f.lost + 1; },
           [](FlowMeasurement& f) { f.rtt_count = f.sent; },
           [](FlowMeasurement& f) { f.sent = 0, f.lost = f.late = f.rtt_count = 0; },
           [](FlowMeasurement& f) { f.rtt_sum_s = -1; },
           [](FlowMeasurement& f) { f.sent = 100000, f.lost = 0; },  // more than the group sent
           [](FlowMeasurement& f) { f.src = 2; },                    // no such source
           [](FlowMeasurement& f) { f.dst = 1; },                    // no such destination
       }) {
    IterationReport r = full_report();
    bad(r.groups[0].flows[0]);
    EXPECT_FALSE(decode_worker_message(payload_of(encode_frame(WorkerMessage{WorkerReport{1, r}}))).ok());
  }
  // Every truncation of a valid frame is rejected cleanly.
  const std::string frame = encode_frame(WorkerMessage{WorkerReport{1, full_report()}});
  const auto p = payload_of(frame);
  for (size_t n = 0; n < p.size(); ++n) EXPECT_FALSE(decode_worker_message(p.first(n)).ok()) << n;
}

// Found by fuzz/ipc_frame_fuzz.cpp: a map header claiming 2^58 entries made nlohmann throw out of a
// no-exception parse (the supervisor would have died on a worker's frame), and nested arrays recurse once
// per level. Both are now refused as malformed frames.
TEST(worker_Ipc, HostileCborIsRefusedNotThrown) {
  const std::vector<uint8_t> huge_map{0xbb, 0x05, 0x26, 0x26, 0x6d, 0xff, 0xf0, 0x52, 0xbe};
  EXPECT_FALSE(decode_worker_message(huge_map).ok());
  EXPECT_FALSE(decode_supervisor_message(huge_map).ok());
  std::vector<uint8_t> deep(1 << 20, 0x81);  // a million nested one-element arrays
  deep.push_back(0x00);
  EXPECT_FALSE(decode_worker_message(deep).ok());
  const std::vector<uint8_t> huge_array{0x9b, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(decode_worker_message(huge_array).ok());
}

// One frame of every message kind decodes; with NETPROBE_FUZZ_SEEDS=<dir> they are also written there as
// the seed corpus of fuzz/ipc_frame_fuzz.cpp (fuzz/corpus/ipc_frame/ was made so).
TEST(worker_Ipc, EveryMessageKindDecodesAndSeedsTheFuzzer) {
  Shard shard;
  shard.config = full_config();
  shard.hosts["web"] = {*IpAddress::parse("192.0.2.80")};
  const std::vector<std::pair<std::string, std::string>> frames{
      {"shard", encode_frame(SupervisorMessage{shard})},
      {"stop", encode_frame(SupervisorMessage{StopRequest{}})},
      {"ready", encode_frame(WorkerMessage{WorkerReady{2, {"small buffer"}}})},
      {"report", encode_frame(WorkerMessage{WorkerReport{7, full_report()}})},
      {"error", encode_frame(WorkerMessage{WorkerError{"no route", {"a"}}})},
      {"heartbeat", encode_frame(WorkerMessage{WorkerHeartbeat{}})},
  };
  const char* dir = std::getenv("NETPROBE_FUZZ_SEEDS");
  for (const auto& [name, frame] : frames) {
    const bool from_supervisor = name == "shard" || name == "stop";
    EXPECT_EQ(from_supervisor ? decode_supervisor_message(payload_of(frame)).ok()
                              : decode_worker_message(payload_of(frame)).ok(),
              true)
        << name;
    if (dir) {
      std::ofstream(std::string(dir) + "/" + name, std::ios::binary) << frame;
    }
  }
}

TEST(worker_Ipc, FrameReaderReassemblesAnySplit) {
  std::string stream;
  for (int i = 0; i < 5; ++i) stream += encode_frame(WorkerMessage{WorkerReady{uint32_t(i), {}}});
  for (size_t piece : {size_t(1), size_t(3), size_t(7), size_t(64), stream.size()}) {
    FrameReader reader;
    std::vector<uint32_t> seen;
    for (size_t pos = 0; pos < stream.size(); pos += piece) {
      const size_t n = std::min(piece, stream.size() - pos);
      reader.feed({reinterpret_cast<const uint8_t*>(stream.data()) + pos, n});
      while (auto p = reader.next()) {
        auto m = decode_worker_message(*p);
        ASSERT_TRUE(m.ok());
        seen.push_back(std::get<WorkerReady>(*m).index);
      }
    }
    EXPECT_EQ(seen, (std::vector<uint32_t>{0, 1, 2, 3, 4})) << piece;
    EXPECT_EQ(reader.pending(), 0u);
  }
}

TEST(worker_Ipc, FrameReaderRejectsOversizedLength) {
  FrameReader reader;
  const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
  reader.feed(huge);
  EXPECT_FALSE(reader.next().has_value());
  EXPECT_TRUE(reader.error());
}

TEST(worker_Ipc, BlockingHelpersOverASocketpair) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  IterationReport big;
  GroupMeasurement g;
  g.target = "t";
  g.rtts_s.assign(200000, 0.001);  // larger than the socket buffer: needs a concurrent reader
  big.groups.push_back(g);
  std::thread writer([&] {
    EXPECT_TRUE(write_all(sv[0], encode_frame(WorkerMessage{WorkerReport{9, big}})));
    close(sv[0]);
  });
  auto first = read_frame(sv[1]);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->has_value());
  auto m = decode_worker_message(**first);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(std::get<WorkerReport>(*m).report.groups[0].rtts_s.size(), 200000u);
  auto eof = read_frame(sv[1]);
  ASSERT_TRUE(eof.ok());
  EXPECT_FALSE(eof->has_value());  // clean EOF between frames
  writer.join();
  close(sv[1]);
}

TEST(worker_Ipc, TruncatedFrameIsAnError) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  const std::string frame = encode_frame(SupervisorMessage{StopRequest{}});
  ASSERT_TRUE(write_all(sv[0], std::string_view(frame).substr(0, frame.size() - 1)));
  close(sv[0]);
  EXPECT_FALSE(read_frame(sv[1]).ok());
  close(sv[1]);
}

}  // namespace
}  // namespace netprobe

namespace netprobe {
namespace {

OnDemandJob full_job() {
  OnDemandJob j;
  j.id = 42;
  j.type = ProbeType::kUdpUnreachable;
  j.dst = *IpAddress::parse("2001:db8::7");
  j.dst_port = 33434;
  j.dscp = 46;
  j.ip_payload_size = 100;
  j.paris = true;
  j.dont_fragment = false;
  j.icmp_error_resolves = true;
  j.timeout_s = 1.5;
  j.dest_gap_ns = 101'000'000;
  j.global_gap_ns = 21'000'000;
  j.probes = {{33000, 1, 1'000'000'000}, {33001, 255, 1'100'000'000}};
  return j;
}

ProbeEvent full_event() {
  ProbeEvent e;
  e.slot = 1;
  e.src_port = 33001;
  e.state = ProbeEvent::State::kIcmpError;
  e.icmp_type = 3;
  e.icmp_code = 10;
  e.icmp_error = true;
  e.send_error = 4;
  e.rtt_s = 0.25;
  e.duplicates = 2;
  e.has_reply = true;
  e.reply.from = *IpAddress::parse("192.0.2.9");
  e.reply.valid = true;
  e.reply.length = 60;
  e.reply.ttl = 57;
  e.reply.ip_id = 999;
  e.reply.dont_fragment = true;
  e.reply.tos = 8;
  e.reply.protocol = 6;
  e.reply.tcp_flags = 0x12;
  e.reply.tcp_window = 64240;
  e.reply_rtt_s = 0.001;
  e.has_error = true;
  e.error.from = *IpAddress::parse("192.0.2.1");
  e.error.valid = true;
  e.error.icmp_type = 11;
  e.error.mpls_count = 2;
  e.error.mpls[0] = {16001, 3, false, 254};
  e.error.mpls[1] = {24, 0, true, 1};
  e.error_rtt_s = 0.002;
  return e;
}

bool same_reply(const ReplyInfo& a, const ReplyInfo& b) {
  return a.from == b.from && a.length == b.length && a.ttl == b.ttl && a.ip_id == b.ip_id &&
         a.dont_fragment == b.dont_fragment && a.tos == b.tos && a.protocol == b.protocol &&
         a.tcp_flags == b.tcp_flags && a.tcp_window == b.tcp_window && a.icmp_type == b.icmp_type &&
         a.icmp_code == b.icmp_code && a.mpls_count == b.mpls_count && a.mpls == b.mpls && a.valid == b.valid;
}

TEST(worker_Ipc, OnDemandJobRoundTrip) {
  const OnDemandJob j = full_job();
  auto decoded = decode_supervisor_message(payload_of(encode_frame(SupervisorMessage{j})));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  ASSERT_TRUE(std::holds_alternative<OnDemandJob>(*decoded));
  EXPECT_EQ(std::get<OnDemandJob>(*decoded), j);
}

TEST(worker_Ipc, OnDemandResultRoundTrip) {
  OnDemandResult r{9, "", {full_event(), ProbeEvent{}}};
  auto decoded = decode_worker_message(payload_of(encode_frame(WorkerMessage{r})));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  const auto& got = std::get<OnDemandResult>(*decoded);
  EXPECT_EQ(got.id, 9u);
  ASSERT_EQ(got.events.size(), 2u);
  const ProbeEvent& a = got.events[0];
  const ProbeEvent b = full_event();
  EXPECT_EQ(std::tie(a.slot, a.src_port, a.state, a.icmp_type, a.icmp_code, a.icmp_error, a.send_error,
                     a.rtt_s, a.duplicates, a.has_reply, a.reply_rtt_s, a.has_error, a.error_rtt_s),
            std::tie(b.slot, b.src_port, b.state, b.icmp_type, b.icmp_code, b.icmp_error, b.send_error,
                     b.rtt_s, b.duplicates, b.has_reply, b.reply_rtt_s, b.has_error, b.error_rtt_s));
  EXPECT_TRUE(same_reply(a.reply, b.reply));
  EXPECT_TRUE(same_reply(a.error, b.error));
  EXPECT_FALSE(got.events[1].reply.valid);
}

// The worker reads jobs and the supervisor reads results: out-of-range fields, too many probes or events,
// wrong shapes are Errors.
TEST(worker_Ipc, MalformedOnDemandFramesAreErrors) {
  using Json = nlohmann::json;
  const auto job_doc = Json::from_cbor(payload_of(encode_frame(SupervisorMessage{full_job()})));
  const std::vector<std::function<void(Json&)>> bad_jobs{
      [](Json& d) { d.erase("probes"); },
      [](Json& d) { d["probes"] = Json::array(); },
      [](Json& d) {
        Json many = Json::array();
        for (size_t i = 0; i <= kMaxJobProbes; ++i) many.push_back(Json::array({1, 64, 0}));
        d["probes"] = many;
      },
      [](Json& d) { d["probes"][0][1] = 0; },      // TTL 0
      [](Json& d) { d["probes"][0][1] = 256; },    // TTL beyond a byte
      [](Json& d) { d["probes"][0][0] = 70000; },  // port
      [](Json& d) {
        d["probes"][0] = Json::array({1, 2});
      },
      [](Json& d) { d["dscp"] = 64; },
      [](Json& d) { d["ip_payload_size"] = 9000; },
      [](Json& d) { d["timeout_s"] = 0; },
      [](Json& d) { d["timeout_s"] = 61; },
      [](Json& d) { d["dest_gap_ns"] = 20'000'000'000; },
      [](Json& d) { d.erase("global_gap_ns"); },
      [](Json& d) { d["dont_fragment"] = 1; },
      [](Json& d) { d["dst"] = "not-an-address"; },
      [](Json& d) { d["probe_type"] = "PINGv7"; },
  };
  for (size_t i = 0; i < bad_jobs.size(); ++i) {
    Json d = job_doc;
    bad_jobs[i](d);
    EXPECT_FALSE(decode_supervisor_message(Json::to_cbor(d)).ok()) << i;
  }
  const auto result_doc =
      Json::from_cbor(payload_of(encode_frame(WorkerMessage{OnDemandResult{1, "", {full_event()}}})));
  const std::vector<std::function<void(Json&)>> bad_results{
      [](Json& d) { d["events"][0].erase(0); },
      [](Json& d) { d["events"][0][0] = kMaxJobProbes; },  // slot
      [](Json& d) { d["events"][0][2] = 9; },              // state
      [](Json& d) { d["events"][0][6] = 16; },             // send error
      [](Json& d) {
        d["events"][0][10][11] = Json::array({1, 2, 3, 4, 5});
      },
      [](Json& d) { d["events"][0][13][0] = "x"; },  // a valid reply's address
      [](Json& d) {
        Json many = Json::array();
        for (size_t i = 0; i <= kMaxJobProbes; ++i) many.push_back(d["events"][0]);
        d["events"] = many;
      },
      [](Json& d) { d["events"] = "none"; },
  };
  for (size_t i = 0; i < bad_results.size(); ++i) {
    Json d = result_doc;
    bad_results[i](d);
    EXPECT_FALSE(decode_worker_message(Json::to_cbor(d)).ok()) << i;
  }
  // Every truncation of a valid job is rejected cleanly.
  const std::string frame = encode_frame(SupervisorMessage{full_job()});
  const auto p = payload_of(frame);
  for (size_t n = 0; n < p.size(); ++n) EXPECT_FALSE(decode_supervisor_message(p.first(n)).ok()) << n;
}

}  // namespace
}  // namespace netprobe
