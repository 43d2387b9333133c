#include "ipc/ipc.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "config/config_fields.h"

namespace netprobe {
namespace {

using Json = nlohmann::json;

// ---- small field helpers (throw nlohmann exceptions, caught at the decode boundary) ----

IpAddress ip_from(const Json& v) {
  auto ip = IpAddress::parse(v.get<std::string>());
  if (!ip) throw std::invalid_argument("bad IP address " + v.get<std::string>());
  return *ip;
}
ProbeType type_from(const Json& v) {
  auto t = probe_type_from_string(v.get<std::string>());
  if (!t) throw std::invalid_argument("bad probe type " + v.get<std::string>());
  return *t;
}
AddressFamily af_from(const Json& v) {
  const int af = v.get<int>();
  if (af != 4 && af != 6) throw std::invalid_argument("bad address family");
  return af == 4 ? AddressFamily::kV4 : AddressFamily::kV6;
}

// ---- configuration: every field of config/config_fields.h's lists, by type ----
// Encoding and decoding are generated from one list per struct, so a field cannot reach one side and
// not the other.

Json field_to_json(const std::string& v) { return v; }
Json field_to_json(bool v) { return v; }
Json field_to_json(int v) { return v; }
Json field_to_json(uint16_t v) { return v; }
Json field_to_json(double v) { return v; }
Json field_to_json(const IpAddress& v) { return v.to_string(); }
Json field_to_json(const IpNetwork& v) { return v.to_string(); }
Json field_to_json(ProbeType v) { return std::string(to_string(v)); }
Json field_to_json(AddressFamily v) { return int(v); }
Json field_to_json(AlertLevel v) { return std::string(to_string(v)); }
template <typename T>
Json field_to_json(const std::vector<T>& v) {
  Json a = Json::array();
  for (const auto& x : v) a.push_back(field_to_json(x));
  return a;
}
template <typename T>
Json field_to_json(const std::optional<T>& v) {
  return v ? field_to_json(*v) : Json(nullptr);
}
template <ConfigStruct S>
Json field_to_json(const S& s) {
  Json j = Json::object();
  for_each_field(s, [&](const char* name, const auto& v) { j[name] = field_to_json(v); });
  return j;
}

void field_from_json(const Json& j, std::string& v) { v = j.get<std::string>(); }
void field_from_json(const Json& j, bool& v) { v = j.get<bool>(); }
void field_from_json(const Json& j, int& v) { v = j.get<int>(); }
void field_from_json(const Json& j, uint16_t& v) { v = j.get<uint16_t>(); }
void field_from_json(const Json& j, double& v) { v = j.get<double>(); }
void field_from_json(const Json& j, IpAddress& v) { v = ip_from(j); }
void field_from_json(const Json& j, IpNetwork& v) {
  auto net = IpNetwork::parse(j.get<std::string>());
  if (!net) throw std::invalid_argument("bad network " + j.get<std::string>());
  v = *net;
}
void field_from_json(const Json& j, ProbeType& v) { v = type_from(j); }
void field_from_json(const Json& j, AddressFamily& v) { v = af_from(j); }
void field_from_json(const Json& j, AlertLevel& v) {
  auto level = alert_level_from_string(j.get<std::string>());
  if (!level) throw std::invalid_argument("bad alert_level");
  v = *level;
}
template <typename T>
void field_from_json(const Json& j, std::vector<T>& v) {
  v.clear();
  for (const Json& x : j) field_from_json(x, v.emplace_back());
}
template <typename T>
void field_from_json(const Json& j, std::optional<T>& v) {
  if (j.is_null()) {
    v.reset();
  } else {
    field_from_json(j, v.emplace());
  }
}
template <ConfigStruct S>
void field_from_json(const Json& j, S& s) {
  if (!j.is_object()) throw std::invalid_argument("not an object");
  for_each_field(s, [&](const char* name, auto& v) { field_from_json(j.at(name), v); });
}

Json rtts_to_binary(const std::vector<double>& rtts) {
  std::vector<uint8_t> bytes(rtts.size() * sizeof(double));
  static_assert(std::endian::native == std::endian::little, "packed RTTs are little-endian float64");
  if (!rtts.empty()) std::memcpy(bytes.data(), rtts.data(), bytes.size());
  return Json::binary(std::move(bytes));
}

std::vector<double> rtts_from_binary(const Json& v) {
  const auto& bytes = v.get_binary();
  if (bytes.size() % sizeof(double) != 0) throw std::invalid_argument("bad rtts length");
  std::vector<double> rtts(bytes.size() / sizeof(double));
  if (!rtts.empty()) std::memcpy(rtts.data(), bytes.data(), bytes.size());
  return rtts;
}

// A group's flows as fixed-size records in one byte string (a decoded JSON object per flow would cost a map
// node per field, for up to hundreds of thousands of flows per iteration): src u32, dst u32, src_port u16,
// sent, lost, late, rtt_count u32, rtt_sum f32, little-endian. Addresses travel once, as 17-byte records
// (family 4 or 6, then 16 bytes).
constexpr size_t kFlowRecord = 4 + 4 + 2 + 4 * 4 + 4;
constexpr size_t kAddressRecord = 17;

template <typename T>
void put_le(std::vector<uint8_t>& out, T v) {
  static_assert(std::endian::native == std::endian::little, "flow records are little-endian");
  const size_t at = out.size();
  out.resize(at + sizeof v);
  std::memcpy(out.data() + at, &v, sizeof v);
}
template <typename T>
T get_le(const uint8_t*& p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
  return v;
}

Json addresses_to_binary(const std::vector<IpAddress>& addresses) {
  std::vector<uint8_t> bytes;
  bytes.reserve(addresses.size() * kAddressRecord);
  for (const IpAddress& a : addresses) {
    bytes.push_back(a.af == AddressFamily::kV4 ? 4 : 6);
    bytes.insert(bytes.end(), a.bytes.begin(), a.bytes.end());
  }
  return Json::binary(std::move(bytes));
}

std::vector<IpAddress> addresses_from_binary(const Json& v) {
  const auto& bytes = v.get_binary();
  if (bytes.size() % kAddressRecord != 0) throw std::invalid_argument("bad addresses length");
  std::vector<IpAddress> out(bytes.size() / kAddressRecord);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t* p = bytes.data() + i * kAddressRecord;
    if (p[0] != 4 && p[0] != 6) throw std::invalid_argument("bad address family");
    out[i].af = p[0] == 4 ? AddressFamily::kV4 : AddressFamily::kV6;
    std::memcpy(out[i].bytes.data(), p + 1, 16);
  }
  return out;
}

Json flows_to_binary(const GroupMeasurement& g) {
  std::vector<uint8_t> bytes;
  bytes.reserve(g.flows.size() * kFlowRecord);
  for (const FlowMeasurement& f : g.flows) {
    put_le(bytes, f.src);
    put_le(bytes, f.dst);
    put_le(bytes, f.src_port);
    for (uint32_t v : {f.sent, f.lost, f.late, f.rtt_count}) put_le(bytes, v);
    put_le(bytes, f.rtt_sum_s);
  }
  return Json::binary(std::move(bytes));
}

// A worker parses hostile packets: what it reports is checked like any input (counts that add up, indexes
// that designate an address).
std::vector<FlowMeasurement> flows_from_binary(const Json& v, const GroupMeasurement& g, size_t sources) {
  const auto& bytes = v.get_binary();
  if (bytes.size() % kFlowRecord != 0) throw std::invalid_argument("bad flows length");
  std::vector<FlowMeasurement> flows(bytes.size() / kFlowRecord);
  const uint8_t* p = bytes.data();
  uint64_t sent = 0;
  for (FlowMeasurement& f : flows) {
    f.src = get_le<uint32_t>(p);
    f.dst = get_le<uint32_t>(p);
    f.src_port = get_le<uint16_t>(p);
    f.sent = get_le<uint32_t>(p);
    f.lost = get_le<uint32_t>(p);
    f.late = get_le<uint32_t>(p);
    f.rtt_count = get_le<uint32_t>(p);
    f.rtt_sum_s = get_le<float>(p);
    if (f.sent == 0 || f.lost > f.sent || f.late > f.lost || f.rtt_count > f.sent - f.lost ||
        !(f.rtt_sum_s >= 0) || std::isinf(f.rtt_sum_s))
      throw std::invalid_argument("inconsistent flow counts");
    if (f.src >= sources || f.dst >= g.flow_destinations.size())
      throw std::invalid_argument("flow address index out of range");
    sent += f.sent;
  }
  if (sent > g.sent) throw std::invalid_argument("flows sent more than their group");
  return flows;
}

Json to_json(const IterationSettings& s) {
  return Json{
      {"interval_s", s.interval_s},
      {"max_packets_per_second", s.max_packets_per_second},
      // Nanos::max() (no timeout) travels as -1: CBOR integers would carry it, but -1 reads better.
      {"hard_timeout_ns", s.hard_timeout == Nanos::max() ? int64_t(-1) : int64_t(s.hard_timeout.count())}};
}

IterationSettings settings_from(const Json& j) {
  IterationSettings s;
  s.interval_s = j.at("interval_s").get<double>();
  s.max_packets_per_second = j.at("max_packets_per_second").get<double>();
  const int64_t t = j.at("hard_timeout_ns").get<int64_t>();
  s.hard_timeout = t < 0 ? Nanos::max() : Nanos(t);
  return s;
}

std::string frame_of(const Json& doc) {
  const std::vector<uint8_t> payload = Json::to_cbor(doc);
  std::string out(4 + payload.size(), '\0');
  const uint32_t n = uint32_t(payload.size());
  out[0] = char(n >> 24);
  out[1] = char(n >> 16);
  out[2] = char(n >> 8);
  out[3] = char(n);
  std::memcpy(out.data() + 4, payload.data(), payload.size());
  return out;
}

// nlohmann's DOM builder, bounded: the CBOR reader recurses once per nesting level (a frame of nested
// arrays would overflow the stack), and throws out_of_range even with allow_exceptions=false when a map
// header claims more entries than a std::map can hold (found by fuzz/ipc_frame_fuzz.cpp). A container
// header may not claim more entries than there are bytes left, and nesting stops at kMaxIpcDepth.
constexpr size_t kMaxIpcDepth = 32;
class BoundedCborSax : public nlohmann::detail::json_sax_dom_parser<Json> {
 public:
  BoundedCborSax(Json& root, size_t payload_size)
      : json_sax_dom_parser(root, /*allow_exceptions=*/false), payload_size_(payload_size) {}
  bool start_object(std::size_t len) { return enter(len) && json_sax_dom_parser::start_object(len); }
  bool start_array(std::size_t len) { return enter(len) && json_sax_dom_parser::start_array(len); }
  bool end_object() { return leave() && json_sax_dom_parser::end_object(); }
  bool end_array() { return leave() && json_sax_dom_parser::end_array(); }

 private:
  bool enter(std::size_t len) {
    if (len != static_cast<std::size_t>(-1) && len > payload_size_) return false;
    return ++depth_ <= kMaxIpcDepth;
  }
  bool leave() {
    --depth_;
    return true;
  }
  size_t payload_size_;
  size_t depth_ = 0;
};

Result<Json> parse_payload(std::span<const uint8_t> payload) {
  Json doc;
  BoundedCborSax sax(doc, payload.size());
  bool ok = false;
  try {
    ok = Json::sax_parse(payload.begin(), payload.end(), &sax, nlohmann::detail::input_format_t::cbor,
                         /*strict=*/true);
  } catch (const std::exception&) {
    ok = false;  // defensive: nlohmann throws in a few places whatever allow_exceptions says
  }
  if (!ok || sax.is_errored() || !doc.is_object()) return Error{"IPC: payload is not a bounded CBOR object"};
  return doc;
}

}  // namespace

nlohmann::json to_json_document(const Config& config) {
  Json groups = Json::array();
  for (const auto& [name, g] : config.groups) groups.push_back(field_to_json(g));
  Json targets = Json::array();
  for (const auto& [name, t] : config.targets) targets.push_back(field_to_json(t));
  return Json{{"source_path", config.source_path},
              {"global", field_to_json(config.global)},
              {"groups", std::move(groups)},
              {"targets", std::move(targets)}};
}

Result<Config> config_from_json_document(const nlohmann::json& doc) {
  try {
    Config c;
    c.source_path = doc.at("source_path").get<std::string>();
    field_from_json(doc.at("global"), c.global);
    for (const Json& g : doc.at("groups")) {
      GroupConfig group;
      field_from_json(g, group);
      c.groups[group.name] = std::move(group);
    }
    for (const Json& t : doc.at("targets")) {
      TargetConfig target;
      field_from_json(t, target);
      c.targets[target.name] = std::move(target);
    }
    return c;
  } catch (const std::exception& e) {
    return Error{std::string("IPC: bad config: ") + e.what()};
  }
}

nlohmann::json to_json_document(const IterationReport& r) {
  Json groups = Json::array();
  groups.get_ref<Json::array_t&>().reserve(r.groups.size());
  for (const auto& g : r.groups) {
    Json row = Json::array();
    auto& a = row.get_ref<Json::array_t&>();
    a.resize(kGroupFields);
    a[kGroupTarget] = g.target;
    a[kGroupName] = g.group;
    a[kGroupType] = std::string(to_string(g.type));
    a[kGroupAf] = int(g.af);
    a[kGroupState] = g.state;
    a[kGroupSent] = g.sent;
    a[kGroupLost] = g.lost;
    a[kGroupRtts] = rtts_to_binary(g.rtts_s);
    a[kGroupTimeOoo] = g.time_ooo;
    a[kGroupLate] = g.late;
    a[kGroupDuplicates] = g.duplicates;
    a[kGroupIcmpErrors] = g.icmp_errors;
    a[kGroupFlows] = flows_to_binary(g);
    a[kGroupFlowDestinations] = addresses_to_binary(g.flow_destinations);
    a[kGroupUnexpected] = g.unexpected;
    a[kGroupClosed] = g.closed;
    groups.push_back(std::move(row));
  }
  Json targets = Json::array();
  targets.get_ref<Json::array_t&>().reserve(r.targets.size());
  for (const auto& t : r.targets) {
    Json row = Json::array();
    auto& a = row.get_ref<Json::array_t&>();
    a.resize(kTargetFields);
    a[kTargetName] = t.target;
    a[kTargetType] = std::string(to_string(t.type));
    a[kTargetAf] = int(t.af);
    a[kTargetMatchAckFail] = t.match_ack_fail;
    a[kTargetPortMismatch] = t.port_mismatch;
    targets.push_back(std::move(row));
  }
  return Json{{"groups", std::move(groups)},
              {"targets", std::move(targets)},
              {"duration_s", r.duration_s},
              {"send_window_s", r.send_window_s},
              {"capture_received", r.capture_received},
              {"capture_dropped", r.capture_dropped},
              {"capture_if_dropped", r.capture_if_dropped},
              {"rejected", r.rejected},
              {"sources", addresses_to_binary(r.sources)},
              {"send_errors", r.send_errors},
              {"timed_out", r.timed_out}};
}

Result<IterationReport> report_from_json_document(const nlohmann::json& doc) {
  try {
    IterationReport r;
    r.sources = addresses_from_binary(doc.at("sources"));  // before the groups: their flows designate them
    const Json& groups = doc.at("groups");
    r.groups.reserve(groups.size());
    for (const Json& j : groups) {
      if (!j.is_array() || j.size() != kGroupFields) throw std::invalid_argument("bad group row");
      GroupMeasurement g;
      g.target = j[kGroupTarget].get<std::string>();
      g.group = j[kGroupName].get<std::string>();
      g.type = type_from(j[kGroupType]);
      g.af = af_from(j[kGroupAf]);
      g.state = j[kGroupState].get<std::string>();
      g.sent = j[kGroupSent].get<uint64_t>();
      g.lost = j[kGroupLost].get<uint64_t>();
      g.rtts_s = rtts_from_binary(j[kGroupRtts]);
      g.time_ooo = j[kGroupTimeOoo].get<uint64_t>();
      g.late = j[kGroupLate].get<uint64_t>();
      g.duplicates = j[kGroupDuplicates].get<uint64_t>();
      g.icmp_errors = j[kGroupIcmpErrors].get<std::map<std::string, uint64_t>>();
      g.flow_destinations = addresses_from_binary(j[kGroupFlowDestinations]);
      g.unexpected = j[kGroupUnexpected].get<uint64_t>();
      g.closed = j[kGroupClosed].get<uint64_t>();
      if (g.unexpected > g.sent || g.closed > g.sent - g.unexpected ||
          g.lost > g.sent - g.unexpected - g.closed)
        throw std::invalid_argument("bad group counts");
      g.flows = flows_from_binary(j[kGroupFlows], g, r.sources.size());
      r.groups.push_back(std::move(g));
    }
    for (const Json& j : doc.at("targets")) {
      if (!j.is_array() || j.size() != kTargetFields) throw std::invalid_argument("bad target row");
      TargetEvents t;
      t.target = j[kTargetName].get<std::string>();
      t.type = type_from(j[kTargetType]);
      t.af = af_from(j[kTargetAf]);
      t.match_ack_fail = j[kTargetMatchAckFail].get<uint64_t>();
      t.port_mismatch = j[kTargetPortMismatch].get<uint64_t>();
      r.targets.push_back(std::move(t));
    }
    r.duration_s = doc.at("duration_s").get<double>();
    r.send_window_s = doc.at("send_window_s").get<double>();
    r.capture_received = doc.at("capture_received").get<uint64_t>();
    r.capture_dropped = doc.at("capture_dropped").get<uint64_t>();
    r.capture_if_dropped = doc.at("capture_if_dropped").get<uint64_t>();
    r.rejected = doc.at("rejected").get<std::map<std::string, uint64_t>>();
    r.send_errors = doc.at("send_errors").get<std::map<std::string, uint64_t>>();
    r.timed_out = doc.at("timed_out").get<bool>();
    return r;
  } catch (const std::exception& e) {
    return Error{std::string("IPC: bad report: ") + e.what()};
  }
}

namespace {

// ---- on-demand jobs and their events: positional arrays, every field checked on decode ----

Json reply_to_json(const ReplyInfo& r) {
  Json mpls = Json::array();
  for (size_t i = 0; i < std::min<size_t>(r.mpls_count, r.mpls.size()); ++i)
    mpls.push_back(Json::array({r.mpls[i].label, r.mpls[i].tc, r.mpls[i].bottom, r.mpls[i].ttl}));
  return Json::array({r.valid ? r.from.to_string() : std::string(), r.length, r.ttl, r.ip_id, r.dont_fragment,
                      r.tos, r.protocol, r.tcp_flags, r.tcp_window, r.icmp_type, r.icmp_code, std::move(mpls),
                      r.valid});
}

template <typename T>
T bounded(const Json& v, uint64_t max) {
  const uint64_t x = v.get<uint64_t>();
  if (x > max) throw std::invalid_argument("field out of range");
  return T(x);
}

double finite(const Json& v) {
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw std::invalid_argument("not a finite number");
  return d;
}

ReplyInfo reply_from(const Json& j) {
  if (!j.is_array() || j.size() != 13) throw std::invalid_argument("bad reply");
  ReplyInfo r;
  r.valid = j[12].get<bool>();
  if (r.valid) r.from = ip_from(j[0]);
  r.length = bounded<uint16_t>(j[1], 0xffff);
  r.ttl = bounded<uint8_t>(j[2], 0xff);
  r.ip_id = bounded<uint16_t>(j[3], 0xffff);
  r.dont_fragment = j[4].get<bool>();
  r.tos = bounded<uint8_t>(j[5], 0xff);
  r.protocol = bounded<uint8_t>(j[6], 0xff);
  r.tcp_flags = bounded<uint8_t>(j[7], 0xff);
  r.tcp_window = bounded<uint16_t>(j[8], 0xffff);
  r.icmp_type = bounded<uint8_t>(j[9], 0xff);
  r.icmp_code = bounded<uint8_t>(j[10], 0xff);
  if (!j[11].is_array() || j[11].size() > ReplyInfo::kMaxLabels)
    throw std::invalid_argument("bad MPLS stack");
  for (const Json& m : j[11]) {
    if (!m.is_array() || m.size() != 4) throw std::invalid_argument("bad MPLS label");
    r.mpls[r.mpls_count++] = MplsLabel{bounded<uint32_t>(m[0], 0xfffff), bounded<uint8_t>(m[1], 7),
                                       m[2].get<bool>(), bounded<uint8_t>(m[3], 0xff)};
  }
  return r;
}

Json event_to_json(const ProbeEvent& e) {
  return Json::array({e.slot, e.src_port, int(e.state), e.icmp_type, e.icmp_code, e.icmp_error, e.send_error,
                      e.rtt_s, e.duplicates, e.has_reply, reply_to_json(e.reply), e.reply_rtt_s, e.has_error,
                      reply_to_json(e.error), e.error_rtt_s});
}

ProbeEvent event_from(const Json& j) {
  if (!j.is_array() || j.size() != 15) throw std::invalid_argument("bad probe event");
  ProbeEvent e;
  e.slot = bounded<uint32_t>(j[0], kMaxJobProbes - 1);
  e.src_port = bounded<uint16_t>(j[1], 0xffff);
  e.state = ProbeEvent::State(bounded<uint8_t>(j[2], uint8_t(ProbeEvent::State::kUnsent)));
  e.icmp_type = bounded<uint8_t>(j[3], 0xff);
  e.icmp_code = bounded<uint8_t>(j[4], 0xff);
  e.icmp_error = j[5].get<bool>();
  e.send_error = bounded<uint8_t>(j[6], 15);
  e.rtt_s = finite(j[7]);
  e.duplicates = bounded<uint16_t>(j[8], 0xffff);
  e.has_reply = j[9].get<bool>();
  e.reply = reply_from(j[10]);
  e.reply_rtt_s = finite(j[11]);
  e.has_error = j[12].get<bool>();
  e.error = reply_from(j[13]);
  e.error_rtt_s = finite(j[14]);
  return e;
}

Json job_to_json(const OnDemandJob& job) {
  Json probes = Json::array();
  for (const JobProbe& p : job.probes) probes.push_back(Json::array({p.sport, p.ttl, p.send_at_ns}));
  return Json{{"type", "job"},
              {"id", job.id},
              {"probe_type", std::string(to_string(job.type))},
              {"dst", job.dst.to_string()},
              {"dst_port", job.dst_port},
              {"dscp", job.dscp},
              {"ip_payload_size", job.ip_payload_size ? Json(*job.ip_payload_size) : Json(nullptr)},
              {"paris", job.paris},
              {"dont_fragment", job.dont_fragment},
              {"icmp_error_resolves", job.icmp_error_resolves},
              {"timeout_s", job.timeout_s},
              {"dest_gap_ns", job.dest_gap_ns},
              {"global_gap_ns", job.global_gap_ns},
              {"probes", std::move(probes)}};
}

OnDemandJob job_from(const Json& doc) {
  OnDemandJob job;
  job.id = doc.at("id").get<uint64_t>();
  job.type = type_from(doc.at("probe_type"));
  job.dst = ip_from(doc.at("dst"));
  job.dst_port = bounded<uint16_t>(doc.at("dst_port"), 0xffff);
  job.dscp = bounded<uint8_t>(doc.at("dscp"), 63);
  if (const Json& p = doc.at("ip_payload_size"); !p.is_null())
    job.ip_payload_size = bounded<uint16_t>(p, 1472);
  job.paris = doc.at("paris").get<bool>();
  job.dont_fragment = doc.at("dont_fragment").get<bool>();
  job.icmp_error_resolves = doc.at("icmp_error_resolves").get<bool>();
  job.timeout_s = finite(doc.at("timeout_s"));
  if (!(job.timeout_s > 0 && job.timeout_s <= 60)) throw std::invalid_argument("timeout out of range");
  job.dest_gap_ns = bounded<int64_t>(doc.at("dest_gap_ns"), 10'000'000'000);
  job.global_gap_ns = bounded<int64_t>(doc.at("global_gap_ns"), 10'000'000'000);
  const Json& probes = doc.at("probes");
  if (!probes.is_array() || probes.empty() || probes.size() > kMaxJobProbes)
    throw std::invalid_argument("probes: 1 to " + std::to_string(kMaxJobProbes) + " required");
  job.probes.reserve(probes.size());
  for (const Json& p : probes) {
    if (!p.is_array() || p.size() != 3) throw std::invalid_argument("bad probe");
    const uint8_t ttl = bounded<uint8_t>(p[1], 255);
    if (ttl == 0) throw std::invalid_argument("ttl 0");
    job.probes.push_back({bounded<uint16_t>(p[0], 0xffff), ttl, p[2].get<int64_t>()});
  }
  return job;
}

}  // namespace

std::string encode_frame(const SupervisorMessage& message) {
  if (std::holds_alternative<StopRequest>(message)) return frame_of(Json{{"type", "stop"}});
  if (const auto* job = std::get_if<OnDemandJob>(&message)) return frame_of(job_to_json(*job));
  const Shard& s = std::get<Shard>(message);
  Json hosts = Json::object();
  for (const auto& [name, addrs] : s.hosts) {
    Json list = Json::array();
    for (const auto& a : addrs) list.push_back(a.to_string());
    hosts[name] = std::move(list);
  }
  return frame_of(Json{{"type", "shard"},
                       {"generation", s.generation},
                       {"index", s.index},
                       {"slice", Json{{"bits", s.slice.bits}, {"index", s.slice.index}}},
                       {"secret", s.secret},
                       {"settings", to_json(s.settings)},
                       {"config", to_json_document(s.config)},
                       {"hosts", std::move(hosts)}});
}

std::string encode_frame(const WorkerMessage& message) {
  return std::visit(
      [](const auto& m) -> std::string {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, WorkerReady>) {
          return frame_of(Json{{"type", "ready"}, {"index", m.index}, {"warnings", m.warnings}});
        } else if constexpr (std::is_same_v<T, WorkerReport>) {
          return frame_of(
              Json{{"type", "report"}, {"generation", m.generation}, {"report", to_json_document(m.report)}});
        } else if constexpr (std::is_same_v<T, WorkerError>) {
          return frame_of(
              Json{{"type", "error"}, {"message", m.message}, {"inactive_targets", m.inactive_targets}});
        } else if constexpr (std::is_same_v<T, OnDemandResult>) {
          Json events = Json::array();
          for (const ProbeEvent& e : m.events) events.push_back(event_to_json(e));
          return frame_of(
              Json{{"type", "job_result"}, {"id", m.id}, {"error", m.error}, {"events", std::move(events)}});
        } else {
          static_assert(std::is_same_v<T, WorkerHeartbeat>);
          return frame_of(Json{{"type", "heartbeat"}});
        }
      },
      message);
}

Result<SupervisorMessage> decode_supervisor_message(std::span<const uint8_t> payload) {
  auto doc = parse_payload(payload);
  if (!doc.ok()) return doc.error();
  try {
    const std::string type = doc->at("type").get<std::string>();
    if (type == "stop") return SupervisorMessage{StopRequest{}};
    if (type == "job") return SupervisorMessage{job_from(*doc)};
    if (type != "shard") return Error{"IPC: unknown supervisor message \"" + type + "\""};
    // Decoded in place: a Shard moved into a temporary variant made GCC 12 see an OnDemandJob destructor on
    // uninitialised storage (-Wmaybe-uninitialized, a false positive that -Werror turns into an error).
    Result<SupervisorMessage> out{SupervisorMessage(std::in_place_type<Shard>)};
    Shard& s = std::get<Shard>(*out);
    s.generation = doc->at("generation").get<uint64_t>();
    s.index = doc->at("index").get<uint32_t>();
    s.slice.bits = doc->at("slice").at("bits").get<int>();
    s.slice.index = doc->at("slice").at("index").get<uint32_t>();
    if (s.slice.bits < 0 || s.slice.bits > 16) return Error{"IPC: bad key slice"};
    s.secret = doc->at("secret").get<uint64_t>();
    s.settings = settings_from(doc->at("settings"));
    auto config = config_from_json_document(doc->at("config"));
    if (!config.ok()) return config.error();
    s.config = std::move(config).value();
    for (const auto& [name, list] : doc->at("hosts").items()) {
      std::vector<IpAddress> addrs;
      for (const Json& a : list) addrs.push_back(ip_from(a));
      s.hosts[name] = std::move(addrs);
    }
    return out;
  } catch (const std::exception& e) {
    return Error{std::string("IPC: bad supervisor message: ") + e.what()};
  }
}

Result<WorkerMessage> decode_worker_message(std::span<const uint8_t> payload) {
  auto doc = parse_payload(payload);
  if (!doc.ok()) return doc.error();
  try {
    const std::string type = doc->at("type").get<std::string>();
    if (type == "ready") {
      WorkerReady m;
      m.index = doc->at("index").get<uint32_t>();
      m.warnings = doc->at("warnings").get<std::vector<std::string>>();
      return WorkerMessage{std::move(m)};
    }
    if (type == "report") {
      WorkerReport m;
      m.generation = doc->at("generation").get<uint64_t>();
      auto report = report_from_json_document(doc->at("report"));
      if (!report.ok()) return report.error();
      m.report = std::move(report).value();
      return WorkerMessage{std::move(m)};
    }
    if (type == "error") {
      WorkerError m;
      m.message = doc->at("message").get<std::string>();
      m.inactive_targets = doc->at("inactive_targets").get<std::vector<std::string>>();
      return WorkerMessage{std::move(m)};
    }
    if (type == "heartbeat") return WorkerMessage{WorkerHeartbeat{}};
    if (type == "job_result") {
      OnDemandResult m;
      m.id = doc->at("id").get<uint64_t>();
      m.error = doc->at("error").get<std::string>();
      if (m.error.size() > 4096) m.error.resize(4096);
      const Json& events = doc->at("events");
      if (!events.is_array() || events.size() > kMaxJobProbes) return Error{"IPC: bad job result: events"};
      m.events.reserve(events.size());
      for (const Json& e : events) m.events.push_back(event_from(e));
      return WorkerMessage{std::move(m)};
    }
    return Error{"IPC: unknown worker message \"" + type + "\""};
  } catch (const std::exception& e) {
    return Error{std::string("IPC: bad worker message: ") + e.what()};
  }
}

void FrameReader::feed(std::span<const uint8_t> bytes) {
  if (error_) return;
  // Compact lazily: only when the consumed prefix dominates, so a stream of small frames stays O(n).
  if (pos_ > 0 && pos_ >= buffer_.size() / 2) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + std::ptrdiff_t(pos_));
    pos_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<std::vector<uint8_t>> FrameReader::next() {
  if (error_ || buffer_.size() - pos_ < 4) return std::nullopt;
  const uint8_t* p = buffer_.data() + pos_;
  const uint32_t n = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
  if (n > kMaxFrameBytes) {
    error_ = true;
    return std::nullopt;
  }
  if (buffer_.size() - pos_ - 4 < n) return std::nullopt;
  std::vector<uint8_t> payload(p + 4, p + 4 + n);
  pos_ += 4 + n;
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  }
  return payload;
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(size_t(n));
  }
  return true;
}

namespace {
// 1 read everything, 0 clean EOF before the first byte, -1 error or EOF mid-way.
int read_exact(int fd, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return got == 0 ? 0 : -1;
    got += size_t(r);
  }
  return 1;
}
}  // namespace

Result<std::optional<std::vector<uint8_t>>> read_frame(int fd) {
  uint8_t head[4];
  const int h = read_exact(fd, head, 4);
  if (h == 0) return std::optional<std::vector<uint8_t>>();
  if (h < 0) return Error{std::string("IPC read: ") + (errno ? std::strerror(errno) : "truncated frame")};
  const uint32_t n =
      uint32_t(head[0]) << 24 | uint32_t(head[1]) << 16 | uint32_t(head[2]) << 8 | uint32_t(head[3]);
  if (n > kMaxFrameBytes) return Error{"IPC read: frame too large"};
  std::vector<uint8_t> payload(n);
  if (n > 0 && read_exact(fd, payload.data(), n) != 1) return Error{"IPC read: truncated frame"};
  return std::optional<std::vector<uint8_t>>(std::move(payload));
}

}  // namespace netprobe
