#include "probes/packet_util.h"

#include <tins/ip.h>
#include <tins/ipv6.h>
#include <tins/rawpdu.h>

#include <stdexcept>
#include <string>

namespace netprobe::detail {

PacketTemplate build_template(ProbeType type, const ProbeParams& params, Tins::PDU& l4, size_t l4_header_size,
                              uint16_t ip_id) {
  if (params.dst.af != params.af)
    throw std::invalid_argument("probe template: destination " + params.dst.to_string() +
                                " is not of the probe's address family");
  if (!params.src.is_unspecified() && params.src.af != params.af)
    throw std::invalid_argument("probe template: source " + params.src.to_string() +
                                " is not of the probe's address family");

  const size_t payload_size = payload_size_for(params, l4_header_size);
  std::vector<uint8_t> payload(payload_size);
  for (size_t i = 0; i < payload_size; ++i)
    payload[i] = uint8_t(kPayloadPattern[i % (sizeof kPayloadPattern - 1)]);

  PacketTemplate t;
  t.type = type;
  t.params = params;
  if (params.af == AddressFamily::kV4) {
    const IpAddress src = params.src.is_unspecified() ? IpAddress::v4(0) : params.src;
    Tins::IP ip(Tins::IPv4Address(params.dst.to_string()), Tins::IPv4Address(src.to_string()));
    ip.tos(uint8_t(params.dscp << 2));
    ip.ttl(params.ttl);
    ip.id(ip_id);
    ip.flags(params.dont_fragment ? Tins::IP::DONT_FRAGMENT : Tins::IP::Flags(0));
    if (payload_size > 0) l4.inner_pdu(Tins::RawPDU(payload));
    ip.inner_pdu(l4.clone());
    t.bytes = ip.serialize();
    t.l4_offset = ip.header_size();
  } else {
    const IpAddress src = params.src.is_unspecified() ? IpAddress{AddressFamily::kV6, {}} : params.src;
    Tins::IPv6 ip(Tins::IPv6Address(params.dst.bytes.data()), Tins::IPv6Address(src.bytes.data()));
    ip.traffic_class(uint8_t(params.dscp << 2));
    ip.flow_label(0);
    ip.hop_limit(params.ttl);
    if (payload_size > 0) l4.inner_pdu(Tins::RawPDU(payload));
    ip.inner_pdu(l4.clone());
    t.bytes = ip.serialize();
    t.l4_offset = ip.header_size();
  }
  if (t.bytes.size() != t.l4_offset + l4_header_size + payload_size)
    throw std::logic_error("probe template: libtins produced an unexpected packet size");
  t.l4_payload_size = payload_size;
  t.l4_payload_sum =
      wire::Checksum().add({t.bytes.data() + t.l4_offset + l4_header_size, payload_size}).sum16();
  return t;
}

}  // namespace netprobe::detail
