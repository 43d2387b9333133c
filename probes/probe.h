#pragma once
// The probe interface. One implementation per probe type, each in its own file, listed explicitly in
// registry.cpp (zmap's probe_modules are the model). The comments on each function are contracts.
//
// Life of a probe packet:
//   control plane: make_template() builds the constant packet once with libtins (per target host x group);
//   data plane:    craft() copies the template into a caller-owned buffer and patches source address,
//                  source port, token and checksums (no allocation, no libtins, no exceptions);
//   capture:       classify() (one function for all types, below) turns a captured IP packet into a
//                  MatchKey and a verdict, or rejects it with a reason. It never throws, never allocates,
//                  and reads only within the given bytes: captured packets are untrusted input.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/net.h"
#include "core/token_space.h"

namespace netprobe {

namespace udpquery {
struct Spec;
}

// Where a probe's answer is expected. Built from our own outgoing probe and from the reply, so equal keys
// mean "this reply answers this probe".
struct MatchKey {
  ProbeType type = ProbeType::kTcpSyn;
  IpAddress target;         // probe destination (reply: its source; ICMP error: the quoted destination)
  uint16_t local_port = 0;  // probe source port; 0 for ICMP echo
  uint32_t token = 0;       // see the token layout below
  friend bool operator==(const MatchKey&, const MatchKey&) = default;
};

// Token layout per type (docs/matching.md). A probe's wire token W (PacketFields::token, what craft()
// writes) is an index part of token_bits() bits, from which a reply is decoded back to its probe (a keyed
// permutation of the probe's ordinal, the worker's key slice in its top bits), followed by check_bits()
// keyed random bits that are only compared: W = index << check_bits | check. A reply counts only if it
// carries W exactly (matching rule: Probe::proof_matches()), so a blind forger must guess index + check
// = 32 bits (the slice value is keyed per launcher, docs/matching.md#guessed-bits).
//   TCPsyn:          seq = W (18 + 14 bits). A SYN-ACK acks seq+1, a RST-ACK to a SYN with P bytes of
//                    payload acks seq+1 or seq+1+P; (ack-1) >> kTcpSeqShift is the index, or the index
//                    + 1 when seq+P carried (tcp_index_candidates()); the exact ack is then checked.
//   ICMPping:        echo id = W >> 16, echo seq = W & 0xffff (32 + 0 bits).
//   UDPunreachable:  IPv4: IP-ID = index (16 bits), UDP checksum = check (16 bits, made so by a
//                    compensating word in the first 2 payload bytes): both within the 8 quoted bytes.
//                    IPv6: first 4 payload bytes = W (20 + 12 bits; ICMPv6 errors quote them). The flow
//                    label stays 0 (ECMP hashes read it: it must not change within a flow).
//   UDPquery:        W (16 + 16 bits) in the target's token field of the payload (2 or 3 bytes: W's top 16
//                    bits, the index), echoed by the service; IPv4 IP-ID = the index too (quoted by ICMP).
//                    Answers are matched by the engine on the 5-tuple, then by the echoed field
//                    (probes/udp_query.h, docs/service-checks.md#udpquery): classify() cannot find the field.
// kTcpSeqShift and the index widths: core/token_space.h (the configuration check reads them too).
int token_bits(ProbeType type, AddressFamily af);
// Keyed bits after the index in W (never all zero: an IPv4 UDP checksum of 0 means "none").
int check_bits(ProbeType type, AddressFamily af);

// A worker's share of the key space: the top `bits` bits of every token it uses equal `index`, so that
// its capture filter can select its own replies in the kernel (capture_filter(types, slice)).
// bits == 0 is the whole space (one worker).
struct KeySlice {
  int bits = 0;
  uint32_t index = 0;
  friend bool operator==(const KeySlice&, const KeySlice&) = default;
};
// The slice a worker's tokens actually carry: its index XOR a per-launcher random key (disjoint slices
// stay disjoint; the value is unknown outside, docs/matching.md#guessed-bits).
inline KeySlice keyed_slice(const KeySlice& slice, uint32_t key) {
  if (slice.bits <= 0) return slice;
  const uint32_t mask = slice.bits >= 32 ? 0xffffffffu : (uint32_t{1} << slice.bits) - 1;
  return KeySlice{slice.bits, (slice.index ^ key) & mask};
}
// Forces the slice bits into a token of `token_bits` bits.
inline uint32_t apply_slice(uint32_t token, int token_bits_of_type, const KeySlice& slice) {
  if (slice.bits == 0) return token;
  const int shift = token_bits_of_type - slice.bits;
  const uint32_t low = shift >= 32 ? token : (token & ((uint32_t(1) << shift) - 1));
  return (uint32_t(slice.index) << shift) | low;
}
// (1 << token_bits) - 1.
uint32_t token_mask(ProbeType type, AddressFamily af);

// Constant per (target host, group): compiled into the template.
struct ProbeParams {
  AddressFamily af = AddressFamily::kV4;
  IpAddress src;  // default source; craft() may override it per packet (source subnets)
  IpAddress dst;
  uint16_t dst_port = 0;         // ignored by ICMPping
  uint8_t dscp = 0;              // TOS / traffic class = dscp << 2
  bool dont_fragment = true;     // IPv4 DF bit
  uint16_t ip_payload_size = 0;  // L4 header + data; smaller than the bare L4 header means "bare header"
  uint8_t ttl = 64;
  // UDPquery only: payload, token field and expect (probes/udp_query_spec.h); null for the other types.
  std::shared_ptr<const udpquery::Spec> query;
};

// Patched into every packet.
struct PacketFields {
  IpAddress src;
  uint16_t src_port = 0;  // ignored by ICMPping
  uint32_t token = 0;
};

// A complete IP packet (from the IP header on) plus what craft() needs to patch it.
struct PacketTemplate {
  ProbeType type = ProbeType::kTcpSyn;
  ProbeParams params;
  std::vector<uint8_t> bytes;
  size_t l4_offset = 0;        // where the L4 header starts
  size_t l4_payload_size = 0;  // bytes after the L4 header
  // One's-complement sum (wire::Checksum::sum16) of the constant L4 payload, so that craft() checksums
  // only the headers it patches and its cost does not grow with ip_payload_size. Set by make_template();
  // whoever edits `bytes` after make_template() must update it.
  uint16_t l4_payload_sum = 0;
  // ICMPping for `netprobe trace` (Paris traceroute): the echo checksum is held at PacketFields::src_port
  // (the flow's id) by the first payload word, so that a router hashing ICMP on its checksum keeps every
  // probe of the flow on one path. Needs l4_payload_size >= 2 and that word zero in `bytes` (and so out of
  // l4_payload_sum): paris_checksum_template() does both. The daemon never sets it.
  bool paris_checksum = false;
};

enum class Verdict : uint8_t {
  kOwnProbe,   // one of our probes seen leaving; its capture timestamp is the send time
  kAnswer,     // answers the probe under `key`: TCP SYN-ACK or RST-ACK, echo reply, UDP port unreachable
  kIcmpError,  // an ICMP error quoting the probe under `key` that is not its expected answer
  kReject,     // not ours or unusable; `reason` says why
  // TCP: a pure ACK (no SYN, RST, FIN or data) to one of our ports. `key` and `proof` are read as for a
  // SYN-ACK, so `key` names the SYN it acknowledges. A half-open connection left by an earlier probe (its
  // RST lost) answers a new SYN on the same 4-tuple that way; the engine decides whether it proves that a
  // pending probe arrived (docs/architecture.md#two-way-loss).
  kTcpPureAck,
};

enum class RejectReason : uint8_t {
  kNone = 0,
  kTruncated,          // shorter than its headers claim
  kMalformed,          // impossible header values (bad version, IHL < 5, ...)
  kFragment,           // an IPv4 fragment other than the first: no transport header to read
  kNotAProbeProtocol,  // not TCP, UDP, ICMP or ICMPv6
  kNotAReply,          // our protocol but not a reply (e.g. a SYN arriving, an echo request, a plain RST)
  kNotAProbe,          // outgoing but not one of our probe shapes
  kQuoteTruncated,     // ICMP error whose quote is too short to identify the probe (< IP header + 8 bytes)
  kQuoteNotAProbe,     // ICMP error quoting something that is not a probe of ours (wrong protocol/shape)
  kCount
};
std::string_view to_string(RejectReason r);

struct Classification {
  Verdict verdict = Verdict::kReject;
  RejectReason reason = RejectReason::kNone;
  MatchKey key;
  IpAddress local;           // our address: the reply's destination, or the probe's source
  uint32_t proof = 0;        // what Probe::proof_matches() checks against W: TCP answers the ack, else the
                             // wire token as read (seq, id/seq, IP-ID << 16 | UDP checksum, IPv6 UDP word)
  uint16_t remote_port = 0;  // ICMP errors and UDP answers: the quoted destination port; incoming TCP:
                             // the sender's port (kTcpPureAck: part of the 4-tuple the engine checks)
  uint8_t tcp_flags = 0;     // TCP answers and own probes
  uint8_t icmp_type = 0;     // kIcmpError and UDP kAnswer: the ICMP/ICMPv6 type and code
  uint8_t icmp_code = 0;
};

// A probe type's share of the kernel capture filter (capture_filter.cpp assembles them, in type order):
// clauses for IPv4 and IPv6 packets (own probes and answers), and tests of an ICMP error's quote (the
// quoted protocol and token). With a slice, each clause also tests the slice bits of the token
// (capture_filter.h's helpers).
struct CaptureClauses {
  std::vector<std::string> v4, v6, quoted_v4, quoted_v6;
};

class Probe {
 public:
  virtual ~Probe() = default;
  virtual ProbeType type() const = 0;
  // The prefix of its netprobify metric families ("tcpsyn" -> tcpsyn_loss_ratio, ...).
  virtual std::string_view metric_prefix() const noexcept = 0;
  // Token layout (see above): index bits and check bits of the wire token for family `af`.
  virtual int token_bits(AddressFamily af) const noexcept = 0;
  virtual int check_bits(AddressFamily af) const noexcept = 0;
  // Whether probes have a source port that replies must come back to (ICMP echo has none).
  virtual bool has_ports() const noexcept { return true; }
  // Whether the answer is an ICMP error quoting the probe (UDP's port unreachable): its quoted
  // destination port must then be the probe's too.
  virtual bool answer_quotes_probe() const noexcept { return false; }
  // Appends this type's capture-filter clauses for a worker's key slice (bits 0: the whole space).
  virtual void capture_clauses(const KeySlice& slice, CaptureClauses& out) const = 0;
  // Whether answers that designate no probe of a destination we probe are counted as the target's
  // match_ack_fail (netprobify's TCPsyn family).
  virtual bool counts_unmatched_answers() const noexcept { return false; }
  // Builds the constant packet with libtins. Control plane: may allocate and throw on programmer error.
  virtual PacketTemplate make_template(const ProbeParams& params) const = 0;
  // Writes the packet for `fields` into `out` and returns its length, or 0 if `out` is too small.
  // Copies the template, patches source address, source port and token, recomputes the checksums.
  virtual size_t craft(const PacketTemplate& tmpl, const PacketFields& fields,
                       std::span<uint8_t> out) const noexcept = 0;
  // The matching rule: true if `c` (found by its index under the probe whose wire token is `wire` and
  // whose L4 payload is `payload` bytes) carries that probe's whole token.
  virtual bool proof_matches(uint32_t wire, size_t payload, const Classification& c) const noexcept {
    (void)payload;
    return c.proof == wire;
  }
  // The indexes an answer may designate (at most 2), the first being c.key.token.
  virtual int index_candidates(const Classification& c, uint32_t out[2]) const noexcept {
    out[0] = c.key.token;
    return 1;
  }
  // Follow-ups: whether the answer `c` calls for a packet back when the probe's source is not local (the
  // host's kernel does not answer for it), e.g. TCP's RST closing the half-open connection a SYN-ACK
  // opened; craft_follow_up() writes it for the probe's own `fields` (0: none, or `out` too small).
  // Whether this type ever needs a follow-up (the plan then asks whether each source address is local).
  virtual bool has_follow_ups() const noexcept { return false; }
  virtual bool needs_follow_up(const Classification& c) const noexcept {
    (void)c;
    return false;
  }
  virtual size_t craft_follow_up(const PacketTemplate& tmpl, const PacketFields& fields,
                                 std::span<uint8_t> out) const noexcept {
    (void)tmpl, (void)fields, (void)out;
    return 0;
  }
};

// Classifies one captured IP packet (starting at the IPv4/IPv6 header) of any probe type. Bytes past the
// IPv4 total length / IPv6 payload length (link padding) are ignored. Checksums are not verified: the
// token (a keyed hash) is what authenticates a reply. Outgoing TCP is kOwnProbe only for a SYN without
// ACK whose seq has zero low kTcpSeqShift bits (the shape craft() produces), so the host's own connect()
// SYNs and kernel RSTs are kNotAProbe. IPv6 extension headers are never walked (we never send them):
// such packets are kNotAProbeProtocol, such quotes kQuoteNotAProbe.
Classification classify(std::span<const uint8_t> ip_packet, Direction dir) noexcept;

// TCP: the indexes an answer acking `ack` may designate: (ack-1) >> kTcpSeqShift, and for a RST-ACK the
// one before (seq+1+P carried into the index). Returns how many (1 or 2) were written.
int tcp_index_candidates(uint32_t ack, uint8_t flags, uint32_t out[2]) noexcept;

// TCP: true if `ack` (with `flags`) exactly answers a SYN with sequence `seq` carrying `payload` bytes:
// SYN-ACK acks seq+1; RST-ACK acks seq+1 or seq+1+payload (netprobify accepts both).
bool tcp_ack_matches(uint32_t seq, size_t payload, uint32_t ack, uint8_t flags) noexcept;

// A set of probe types as a bit mask (bit 1 << ProbeType), as the launcher passes it to a worker.
uint32_t probe_types_mask(std::span<const ProbeType> types);
std::vector<ProbeType> probe_types_of_mask(uint32_t mask);

// The probe implementations, one per type (registry.cpp).
const Probe& probe_for(ProbeType type);

// Kernel capture filter (pcap syntax) that passes our outgoing probes and every packet classify() could
// accept as an answer or ICMP error for the given types, for both address families. IPv6 uses fixed
// offsets after the 40-byte header (libpcap cannot index transport headers over IPv6). It compiles for
// DLT_LINUX_SLL, DLT_EN10MB and DLT_RAW and uses no `inbound`/`outbound` (direction comes from the link
// header, in user space). Narrower than classify() where the kernel can tell for sure: ICMP errors must
// quote one of the selected protocols. Incoming UDP passes whenever UDPunreachable is selected (it cannot be
// told from our outgoing probes without local addresses or ports: AND the worker's own slice to this). An
// empty set gives a filter that passes nothing. The snap length must cover link header + 100 bytes (an ICMPv6
// error quoting an IPv6 header, the UDP header and the 4-byte token word).
std::string capture_filter(std::span<const ProbeType> types);
// The same, narrowed to one worker's key slice: with slice.bits > 0 every clause also requires the top
// slice.bits of the token (of each type's own token_bits(), as apply_slice() places them), read where
// classify() reads it (TCP seq / ack-1, echo id, IP-ID / IPv6 UDP payload word, or the quoted ones), to
// equal slice.index. Tokens are random below the slice bits, so N workers with disjoint slices each receive
// their own replies only. Quoted IPv4 headers are assumed to carry no options (ours never do). RST-ACKs
// are selected by ack-1 or ack-1-2^kTcpSeqShift (capture_filter.cpp explains).
// bits == 0 is the whole space: the same string as capture_filter(types). Throws std::invalid_argument
// if the index does not fit the bits or the bits exceed the token of a selected type (either family).
std::string capture_filter(std::span<const ProbeType> types, const KeySlice& slice);

}  // namespace netprobe
