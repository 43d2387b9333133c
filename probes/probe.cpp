#include "probes/probe.h"

#include "wire/l4.h"

namespace netprobe {

int token_bits(ProbeType type, AddressFamily af) { return probe_for(type).token_bits(af); }

int check_bits(ProbeType type, AddressFamily af) { return probe_for(type).check_bits(af); }

uint32_t token_mask(ProbeType type, AddressFamily af) {
  const int bits = token_bits(type, af);
  return bits >= 32 ? 0xffffffffu : (uint32_t{1} << bits) - 1;
}

std::string_view to_string(RejectReason r) {
  switch (r) {
    case RejectReason::kNone:
      return "none";
    case RejectReason::kTruncated:
      return "truncated";
    case RejectReason::kMalformed:
      return "malformed";
    case RejectReason::kFragment:
      return "fragment";
    case RejectReason::kNotAProbeProtocol:
      return "not_a_probe_protocol";
    case RejectReason::kNotAReply:
      return "not_a_reply";
    case RejectReason::kNotAProbe:
      return "not_a_probe";
    case RejectReason::kQuoteTruncated:
      return "quote_truncated";
    case RejectReason::kQuoteNotAProbe:
      return "quote_not_a_probe";
    case RejectReason::kCount:
      break;
  }
  return "?";
}

int tcp_index_candidates(uint32_t ack, uint8_t flags, uint32_t out[2]) noexcept {
  constexpr uint32_t kMask = (uint32_t{1} << (32 - kTcpSeqShift)) - 1;
  out[0] = ((ack - 1) >> kTcpSeqShift) & kMask;
  if (!(flags & wire::TcpView::kRst) || (flags & wire::TcpView::kSyn)) return 1;
  out[1] = (out[0] - 1) & kMask;
  return 2;
}

bool tcp_ack_matches(uint32_t seq, size_t payload, uint32_t ack, uint8_t flags) noexcept {
  using wire::TcpView;
  if (!(flags & TcpView::kAck)) return false;
  const uint32_t syn_ack = seq + 1;  // the SYN itself takes one sequence number (wraps mod 2^32)
  if (flags & TcpView::kSyn) return ack == syn_ack;
  if (flags & TcpView::kRst) return ack == syn_ack || ack == syn_ack + static_cast<uint32_t>(payload);
  return false;
}

}  // namespace netprobe
