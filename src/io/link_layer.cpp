#include "io/link_layer.h"

#include <pcap/dlt.h>

namespace netprobe {
namespace {

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86DD;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88A8;
constexpr uint8_t kPacketOutgoing = 4;     // linux/if_packet.h PACKET_OUTGOING
constexpr int kLinktypeRaw = 101;          // LINKTYPE_RAW, as written in pcap files by some tools
constexpr uint16_t kArphrdLoopback = 772;  // linux/if_arp.h ARPHRD_LOOPBACK

inline uint16_t be16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }

// The IP version nibble must agree with what the link layer announced (or be 4/6 when it says nothing).
LinkDecode ip_from(std::span<const uint8_t> bytes, int want_version, LinkFrame* out) {
  if (bytes.empty()) return LinkDecode::kTruncated;
  const int version = bytes[0] >> 4;
  if (version != 4 && version != 6) return LinkDecode::kNotIp;
  if (want_version != 0 && version != want_version) return LinkDecode::kNotIp;
  out->ip = bytes;
  return LinkDecode::kIp;
}

int version_of(uint16_t ethertype) { return ethertype == kEtherIpv4 ? 4 : ethertype == kEtherIpv6 ? 6 : -1; }

}  // namespace

bool link_type_supported(int dlt) noexcept {
  switch (dlt) {
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_EN10MB:
    case DLT_RAW:
    case kLinktypeRaw:
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_NULL:
    case DLT_LOOP:
      return true;
    default:
      return false;
  }
}

LinkDecode decode_link(int dlt, std::span<const uint8_t> f, LinkFrame* out) noexcept {
  *out = LinkFrame{};
  switch (dlt) {
    case DLT_LINUX_SLL: {
      // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
      if (f.size() < 16) return LinkDecode::kTruncated;
      const int v = version_of(be16(&f[14]));
      if (v < 0) return LinkDecode::kNotIp;
      out->direction = be16(&f[0]) == kPacketOutgoing ? Direction::kOutgoing : Direction::kIncoming;
      out->direction_from =
          be16(&f[2]) == kArphrdLoopback ? DirectionFrom::kLoopback : DirectionFrom::kLinkHeader;
      return ip_from(f.subspan(16), v, out);
    }
    case DLT_LINUX_SLL2: {
      // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
      if (f.size() < 20) return LinkDecode::kTruncated;
      const int v = version_of(be16(&f[0]));
      if (v < 0) return LinkDecode::kNotIp;
      out->direction = f[10] == kPacketOutgoing ? Direction::kOutgoing : Direction::kIncoming;
      out->direction_from =
          be16(&f[8]) == kArphrdLoopback ? DirectionFrom::kLoopback : DirectionFrom::kLinkHeader;
      return ip_from(f.subspan(20), v, out);
    }
    case DLT_EN10MB: {
      size_t off = 12;
      if (f.size() < off + 2) return LinkDecode::kTruncated;
      uint16_t type = be16(&f[off]);
      for (int tags = 0; (type == kEtherVlan || type == kEtherQinQ) && tags < 2; ++tags) {
        off += 4;
        if (f.size() < off + 2) return LinkDecode::kTruncated;
        type = be16(&f[off]);
      }
      const int v = version_of(type);
      if (v < 0) return LinkDecode::kNotIp;
      out->src_mac = f.subspan(6, 6);
      return ip_from(f.subspan(off + 2), v, out);
    }
    case DLT_RAW:
    case kLinktypeRaw:
      return ip_from(f, 0, out);
    case DLT_IPV4:
      return ip_from(f, 4, out);
    case DLT_IPV6:
      return ip_from(f, 6, out);
    case DLT_NULL:
    case DLT_LOOP:
      // 4-byte address family whose value and byte order differ per OS: trust the IP version nibble.
      if (f.size() < 4) return LinkDecode::kTruncated;
      return ip_from(f.subspan(4), 0, out);
    default:
      return LinkDecode::kNotIp;
  }
}

}  // namespace netprobe
