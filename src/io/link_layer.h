#pragma once
// Link-layer decoding shared by the live and file pcap sources: strips the link header of one captured
// frame and says which way it went. Pure functions over untrusted bytes: bounds-checked, no allocation.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/net.h"

namespace netprobe {

// pcap link types we decode (values of DLT_* / LINKTYPE_*; DLT_RAW is 12 on Linux, LINKTYPE_RAW 101).
bool link_type_supported(int dlt) noexcept;

enum class LinkDecode : uint8_t {
  kIp,         // `ip` holds an IPv4 or IPv6 packet (first nibble checked)
  kNotIp,      // ARP, LLDP, ...: skipped
  kTruncated,  // shorter than its link header
};

// How the direction of a frame is known.
enum class DirectionFrom : uint8_t {
  kLinkHeader,  // Linux cooked header packet type: `direction` is right
  kLoopback,    // Linux cooked header of a loopback device: libpcap keeps only the incoming copy of
                // every loopback packet, which this host both sent and received
  kUnknown,     // Ethernet (see src_mac), raw IP, BSD loopback: the caller decides
};

struct LinkFrame {
  std::span<const uint8_t> ip;
  Direction direction = Direction::kIncoming;
  DirectionFrom direction_from = DirectionFrom::kUnknown;
  std::span<const uint8_t> src_mac;  // Ethernet only: 6 bytes
};

LinkDecode decode_link(int dlt, std::span<const uint8_t> frame, LinkFrame* out) noexcept;

}  // namespace netprobe
