// classify(): one captured IP packet -> MatchKey + verdict, or a reject reason. Captured bytes are
// untrusted: everything is read through the bounds-checked wire views, nothing is allocated or thrown.
//
// ICMP errors are matched by what they quote (zmap's icmp_helper_validate is the model), never by their
// source: any router on the path may send one. The quote starts right after the 8-byte ICMP header
// (libtins 4.0's IP::matches_response skips only 4 bytes and must not be used for this).
#include "probes/probe.h"
#include "wire/ip.h"
#include "wire/l4.h"

namespace netprobe {

namespace {

using wire::IcmpView;
using wire::Ipv4View;
using wire::Ipv6View;
using wire::ParseError;
using wire::TcpView;
using wire::UdpView;

constexpr int kUdp6CheckBits = 12;  // check_bits(kUdpUnreachable, kV6)

// The network-layer fields classify() needs, for either family.
struct IpInfo {
  AddressFamily af;
  uint8_t protocol;
  const uint8_t* src;
  const uint8_t* dst;
  uint16_t ip_id;  // IPv4 identification (0 for IPv6)
  std::span<const uint8_t> l4;
  bool later_fragment;  // IPv4 fragment offset != 0: `l4` is not a transport header
};

Classification reject(RejectReason r) noexcept {
  Classification c;
  c.verdict = Verdict::kReject;
  c.reason = r;
  return c;
}

RejectReason outer_reason(ParseError e) noexcept {
  return e == ParseError::kTruncated ? RejectReason::kTruncated : RejectReason::kMalformed;
}

// Parses an outer or a quoted (inside an ICMP error) IP header of family `af`; `why` says why not.
bool parse_ip(std::span<const uint8_t> b, bool quoted, AddressFamily af, IpInfo& out,
              ParseError& why) noexcept {
  if (af == AddressFamily::kV4) {
    auto ip = quoted ? Ipv4View::parse_quoted(b, &why) : Ipv4View::parse(b, &why);
    if (!ip) return false;
    out = {AddressFamily::kV4, ip->protocol(), ip->src_bytes(),           ip->dst_bytes(),
           uint16_t(ip->id()), ip->payload(),  ip->fragment_offset() != 0};
    return true;
  }
  auto ip = quoted ? Ipv6View::parse_quoted(b, &why) : Ipv6View::parse(b, &why);
  if (!ip) return false;
  out = {AddressFamily::kV6, ip->next_header(), ip->src_bytes(), ip->dst_bytes(), 0, ip->payload(), false};
  return true;
}

bool is_probe_protocol(AddressFamily af, uint8_t proto) noexcept {
  return proto == wire::kProtoTcp || proto == wire::kProtoUdp ||
         proto == (af == AddressFamily::kV4 ? wire::kProtoIcmp : wire::kProtoIcmpv6);
}

uint8_t echo_request_type(AddressFamily af) noexcept {
  return af == AddressFamily::kV4 ? IcmpView::kV4EchoRequest : IcmpView::kV6EchoRequest;
}

void set_key(Classification& c, ProbeType type, AddressFamily af, const uint8_t* target, uint16_t local_port,
             uint32_t token, const uint8_t* local) noexcept {
  c.key.type = type;
  c.key.target = IpAddress::from_bytes(af, target);
  c.key.local_port = local_port;
  c.key.token = token;
  c.local = IpAddress::from_bytes(af, local);
}

// A UDP probe's wire token from its IP header and UDP header + payload (`udp`, at least 8 bytes):
// IPv4 IP-ID << 16 | checksum, IPv6 the first payload word. False if the payload word is missing.
bool udp_wire_token(const IpInfo& ip, std::span<const uint8_t> udp, uint32_t& wire,
                    uint32_t& index) noexcept {
  if (ip.af == AddressFamily::kV4) {
    wire = uint32_t(ip.ip_id) << 16 | wire::load_be16(udp.data() + 6);
    index = ip.ip_id;
    return true;
  }
  if (udp.size() < 12) return false;
  wire = wire::load_be32(udp.data() + 8);
  index = wire >> kUdp6CheckBits;
  return true;
}

// An incoming ICMP/ICMPv6 error: identify the probe from the quoted packet.
Classification classify_quote(const IpInfo& outer, const IcmpView& icmp) noexcept {
  IpInfo inner;
  ParseError why = ParseError::kNone;
  if (!parse_ip(icmp.body(), /*quoted=*/true, outer.af, inner, why))
    return reject(why == ParseError::kTruncated ? RejectReason::kQuoteTruncated
                                                : RejectReason::kQuoteNotAProbe);
  // We never send fragments, and a later fragment does not start with the transport header.
  if (inner.later_fragment || !is_probe_protocol(inner.af, inner.protocol))
    return reject(RejectReason::kQuoteNotAProbe);
  // RFC 792 guarantees 8 bytes of the transport header: ports and TCP seq / echo id+seq all fit.
  const auto l4 = inner.l4;
  if (l4.size() < 8) return reject(RejectReason::kQuoteTruncated);
  const uint16_t sport = wire::load_be16(l4.data());

  Classification c;
  c.remote_port = wire::load_be16(l4.data() + 2);
  c.icmp_type = icmp.type();
  c.icmp_code = icmp.code();
  c.verdict = Verdict::kIcmpError;
  switch (inner.protocol) {
    case wire::kProtoTcp: {
      // The flags are only there if more than 8 bytes were quoted; when they are, they must be a bare SYN.
      if (l4.size() >= 14) {
        const uint8_t flags = l4[13];
        if (!(flags & TcpView::kSyn) || (flags & TcpView::kAck)) return reject(RejectReason::kQuoteNotAProbe);
      }
      const uint32_t seq = wire::load_be32(l4.data() + 4);
      c.proof = seq;
      set_key(c, ProbeType::kTcpSyn, inner.af, inner.dst, sport, seq >> kTcpSeqShift, inner.src);
      return c;
    }
    case wire::kProtoUdp: {
      uint32_t index = 0;
      // IPv6: our token is in the payload, which ICMPv6 errors quote (RFC 4443: as much as fits).
      if (!udp_wire_token(inner, l4, c.proof, index)) return reject(RejectReason::kQuoteTruncated);
      set_key(c, ProbeType::kUdpUnreachable, inner.af, inner.dst, sport, index, inner.src);
      const bool port_unreachable =
          outer.af == AddressFamily::kV4
              ? icmp.type() == IcmpView::kV4DestUnreachable && icmp.code() == IcmpView::kV4CodePortUnreachable
              : icmp.type() == IcmpView::kV6DestUnreachable &&
                    icmp.code() == IcmpView::kV6CodePortUnreachable;
      if (port_unreachable) c.verdict = Verdict::kAnswer;
      return c;
    }
    default: {  // ICMP / ICMPv6 (is_probe_protocol)
      if (l4[0] != echo_request_type(inner.af)) return reject(RejectReason::kQuoteNotAProbe);
      const uint32_t token = uint32_t(wire::load_be16(l4.data() + 4)) << 16 | wire::load_be16(l4.data() + 6);
      c.proof = token;
      set_key(c, ProbeType::kIcmpPing, inner.af, inner.dst, 0, token, inner.src);
      return c;
    }
  }
}

Classification classify_tcp(const IpInfo& ip, Direction dir) noexcept {
  ParseError why;
  const auto tcp = TcpView::parse(ip.l4, &why);
  if (!tcp) return reject(outer_reason(why));
  const uint8_t flags = tcp->flags();
  Classification c;
  c.tcp_flags = flags;
  if (dir == Direction::kOutgoing) {
    // Our probes are bare SYNs (not e.g. the RST our kernel sends when a SYN-ACK arrives); the host's own
    // connect() SYNs pass here and are told apart by their whole seq when matched.
    if (!(flags & TcpView::kSyn) || (flags & TcpView::kAck)) return reject(RejectReason::kNotAProbe);
    c.verdict = Verdict::kOwnProbe;
    c.proof = tcp->seq();
    set_key(c, ProbeType::kTcpSyn, ip.af, ip.dst, tcp->src_port(), tcp->seq() >> kTcpSeqShift, ip.src);
    return c;
  }
  // SYN-ACK (open port) and RST-ACK (closed port) both answer a SYN, as in netprobify. A RST without ACK
  // carries no acknowledgement to match (netprobify: match_fail + loss). A pure ACK (no data: a half-open
  // connection's answer to an out-of-window SYN) is passed on as such for the engine to judge.
  const bool pure_ack =
      (flags & (TcpView::kAck | TcpView::kSyn | TcpView::kRst | TcpView::kFin)) == TcpView::kAck &&
      tcp->payload().empty();
  if (!(flags & TcpView::kAck) || (!(flags & (TcpView::kSyn | TcpView::kRst)) && !pure_ack))
    return reject(RejectReason::kNotAReply);
  c.verdict = pure_ack ? Verdict::kTcpPureAck : Verdict::kAnswer;
  c.proof = tcp->ack();
  c.remote_port = tcp->src_port();
  uint32_t candidates[2];
  tcp_index_candidates(tcp->ack(), flags, candidates);
  set_key(c, ProbeType::kTcpSyn, ip.af, ip.src, tcp->dst_port(), candidates[0], ip.dst);
  return c;
}

Classification classify_udp(const IpInfo& ip, Direction dir) noexcept {
  ParseError why;
  const auto udp = UdpView::parse(ip.l4, &why);
  if (!udp) return reject(outer_reason(why));
  // UDPunreachable is answered by ICMP, never by UDP; a UDPquery answer's token sits at a per-target offset
  // classify() cannot know: an incoming datagram is a UDPquery answer candidate keyed by its 5-tuple, which
  // the engine looks up (probes/udp_query.h).
  if (dir == Direction::kIncoming) {
    Classification c;
    c.verdict = Verdict::kAnswer;
    c.remote_port = udp->src_port();
    set_key(c, ProbeType::kUdpQuery, ip.af, ip.src, udp->dst_port(), 0, ip.dst);
    return c;
  }
  Classification c;
  uint32_t index = 0;
  if (!udp_wire_token(ip, ip.l4, c.proof, index)) return reject(RejectReason::kNotAProbe);
  c.verdict = Verdict::kOwnProbe;
  c.remote_port = udp->dst_port();
  set_key(c, ProbeType::kUdpUnreachable, ip.af, ip.dst, udp->src_port(), index, ip.src);
  return c;
}

Classification classify_icmp(const IpInfo& ip, Direction dir) noexcept {
  ParseError why;
  const auto icmp = IcmpView::parse(ip.l4, &why);
  if (!icmp) return reject(outer_reason(why));
  const bool v4 = ip.af == AddressFamily::kV4;
  const uint8_t type = icmp->type();
  const uint32_t token = uint32_t(icmp->echo_id()) << 16 | icmp->echo_seq();
  Classification c;
  if (dir == Direction::kOutgoing) {
    if (type != echo_request_type(ip.af) || icmp->code() != 0) return reject(RejectReason::kNotAProbe);
    c.verdict = Verdict::kOwnProbe;
    c.proof = token;
    set_key(c, ProbeType::kIcmpPing, ip.af, ip.dst, 0, token, ip.src);
    return c;
  }
  if (type == (v4 ? IcmpView::kV4EchoReply : IcmpView::kV6EchoReply)) {
    c.verdict = Verdict::kAnswer;
    c.proof = token;
    set_key(c, ProbeType::kIcmpPing, ip.af, ip.src, 0, token, ip.dst);
    return c;
  }
  if (v4 ? IcmpView::is_v4_error(type) : IcmpView::is_v6_error(type)) return classify_quote(ip, *icmp);
  return reject(RejectReason::kNotAReply);
}

}  // namespace

Classification classify(std::span<const uint8_t> ip_packet, Direction dir) noexcept {
  if (ip_packet.empty()) return reject(RejectReason::kTruncated);
  const uint8_t version = ip_packet[0] >> 4;
  if (version != 4 && version != 6) return reject(RejectReason::kMalformed);
  const AddressFamily af = version == 4 ? AddressFamily::kV4 : AddressFamily::kV6;
  IpInfo ip;
  ParseError why = ParseError::kNone;
  if (!parse_ip(ip_packet, /*quoted=*/false, af, ip, why)) return reject(outer_reason(why));
  // A first fragment still carries the transport header and is classified (a large echo reply); the
  // later ones cannot be.
  if (ip.later_fragment) return reject(RejectReason::kFragment);
  switch (ip.protocol) {
    case wire::kProtoTcp:
      return classify_tcp(ip, dir);
    case wire::kProtoUdp:
      return classify_udp(ip, dir);
    case wire::kProtoIcmp:
      if (af == AddressFamily::kV4) return classify_icmp(ip, dir);
      break;
    case wire::kProtoIcmpv6:
      if (af == AddressFamily::kV6) return classify_icmp(ip, dir);
      break;
    default:
      break;
  }
  // Includes IPv6 extension headers: netprobe never sends them, so they cannot be ours.
  return reject(RejectReason::kNotAProbeProtocol);
}

}  // namespace netprobe
