// Per-packet cost of the data path: craft() per type and family, and classify() on a valid answer, a
// foreign packet and a malformed one. Replies are derived from crafted probes by hand (no libtins here).
#include <benchmark/benchmark.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "probes/probe.h"
#include "wire/bytes.h"
#include "wire/checksum.h"

namespace netprobe {
namespace {

using Bytes = std::vector<uint8_t>;

ProbeParams params(ProbeType type, AddressFamily af, uint16_t ip_payload_size) {
  ProbeParams p;
  p.af = af;
  p.src = *IpAddress::parse(af == AddressFamily::kV4 ? "10.0.0.1" : "fd00::1");
  p.dst = *IpAddress::parse(af == AddressFamily::kV4 ? "10.0.0.2" : "fd00::2");
  p.dst_port = type == ProbeType::kIcmpPing ? 0 : 443;
  p.dscp = 8;
  p.ip_payload_size = ip_payload_size;
  return p;
}

Bytes crafted(ProbeType type, AddressFamily af, uint32_t token, uint16_t size = 0) {
  const Probe& probe = probe_for(type);
  const PacketTemplate t = probe.make_template(params(type, af, size));
  Bytes out(t.bytes.size());
  out.resize(probe.craft(t, PacketFields{t.params.src, 40000, token}, out));
  return out;
}

// Args: probe type, address family (4/6), ip_payload_size.
void BM_Craft(benchmark::State& state) {
  const auto type = static_cast<ProbeType>(state.range(0));
  const auto af = state.range(1) == 4 ? AddressFamily::kV4 : AddressFamily::kV6;
  const Probe& probe = probe_for(type);
  const PacketTemplate t = probe.make_template(params(type, af, uint16_t(state.range(2))));
  Bytes out(2048);
  PacketFields f{t.params.src, 40000, 1};
  for (auto _ : state) {
    f.src_port = uint16_t(40000 + (f.token & 1023));
    f.token = (f.token + 1) & token_mask(type, af);
    f.token += f.token == 0;
    benchmark::DoNotOptimize(probe.craft(t, f, out));
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(to_string(type)) + "/" + std::string(to_string(af)));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Craft)
    ->ArgNames({"type", "af", "size"})
    ->ArgsProduct({{0, 1, 2}, {4, 6}, {0}})
    ->Args({0, 4, 1400})
    ->Args({2, 6, 1400});

// A SYN-ACK answering a crafted SYN: addresses and ports swapped, ack = seq + 1.
Bytes syn_ack(AddressFamily af, uint32_t token = 0x1234) {
  Bytes b = crafted(ProbeType::kTcpSyn, af, token);
  const bool v4 = af == AddressFamily::kV4;
  const size_t a = v4 ? 12 : 8, n = v4 ? 4 : 16, l4 = v4 ? 20 : 40;
  std::swap_ranges(b.begin() + a, b.begin() + a + n, b.begin() + a + n);
  std::swap_ranges(b.begin() + l4, b.begin() + l4 + 2, b.begin() + l4 + 2);
  wire::store_be32(b.data() + l4 + 8, wire::load_be32(b.data() + l4 + 4) + 1);
  b[l4 + 13] = 0x12;
  return b;
}

// An ICMP(v6) error from a router quoting `quoted` (whole).
Bytes icmp_error(AddressFamily af, uint8_t type, uint8_t code, const Bytes& quoted) {
  const bool v4 = af == AddressFamily::kV4;
  Bytes b(v4 ? 20 : 40, 0);
  if (v4) {
    b[0] = 0x45;
    wire::store_be16(b.data() + 2, uint16_t(20 + 8 + quoted.size()));
    b[8] = 64;
    b[9] = 1;
    std::copy(quoted.begin() + 16, quoted.begin() + 20, b.begin() + 12);  // from "router" = probe dst
    std::copy(quoted.begin() + 12, quoted.begin() + 16, b.begin() + 16);
  } else {
    b[0] = 0x60;
    wire::store_be16(b.data() + 4, uint16_t(8 + quoted.size()));
    b[6] = 58;
    b[7] = 64;
    std::copy(quoted.begin() + 24, quoted.begin() + 40, b.begin() + 8);
    std::copy(quoted.begin() + 8, quoted.begin() + 24, b.begin() + 24);
  }
  b.insert(b.end(), {type, code, 0, 0, 0, 0, 0, 0});
  b.insert(b.end(), quoted.begin(), quoted.end());
  return b;
}

struct ClassifyCase {
  const char* name;
  Bytes bytes;
  Direction dir;
};

const std::vector<ClassifyCase>& classify_cases() {
  static const std::vector<ClassifyCase> cases = [] {
    const auto v4 = AddressFamily::kV4, v6 = AddressFamily::kV6;
    std::vector<ClassifyCase> c;
    c.push_back({"answer: TCP SYN-ACK v4", syn_ack(v4), Direction::kIncoming});
    c.push_back({"answer: TCP SYN-ACK v6", syn_ack(v6), Direction::kIncoming});
    Bytes reply = crafted(ProbeType::kIcmpPing, v4, 0xabcd0001, 64);
    reply[20] = 0;  // echo reply
    c.push_back({"answer: echo reply v4", reply, Direction::kIncoming});
    c.push_back({"answer: UDP port unreachable v4",
                 icmp_error(v4, 3, 3, crafted(ProbeType::kUdpUnreachable, v4, 77, 64)),
                 Direction::kIncoming});
    c.push_back({"answer: UDP port unreachable v6",
                 icmp_error(v6, 1, 4, crafted(ProbeType::kUdpUnreachable, v6, 77, 64)),
                 Direction::kIncoming});
    c.push_back({"own probe: TCP SYN v4", crafted(ProbeType::kTcpSyn, v4, 0x1234), Direction::kOutgoing});
    Bytes psh_ack = syn_ack(v4);
    psh_ack[33] = 0x18;
    c.push_back({"foreign: TCP PSH-ACK v4", psh_ack, Direction::kIncoming});
    Bytes gre = crafted(ProbeType::kUdpUnreachable, v4, 77, 64);
    gre[9] = 47;
    c.push_back({"foreign: ICMP error quoting GRE v4", icmp_error(v4, 3, 1, gre), Direction::kIncoming});
    Bytes bad_ihl = syn_ack(v4);
    bad_ihl[0] = 0x44;
    c.push_back({"malformed: IHL 4", bad_ihl, Direction::kIncoming});
    Bytes truncated = syn_ack(v6);
    truncated.resize(50);
    c.push_back({"malformed: truncated v6", truncated, Direction::kIncoming});
    return c;
  }();
  return cases;
}

void BM_Classify(benchmark::State& state) {
  const ClassifyCase& c = classify_cases().at(size_t(state.range(0)));
  const std::span<const uint8_t> bytes(c.bytes);
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes.data());
    const Classification r = classify(bytes, c.dir);
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(c.name);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Classify)->DenseRange(0, 9);

// The all-types capture filter, whole space (slice bits 0) or key slice {2, 1}: its size in BPF
// instructions (counter bpf_insns, pcap_compile on DLT_EN10MB) and the cost of running it (libpcap's
// interpreter, as a proxy for the kernel's) on an IPv4 SYN-ACK of the slice, which it passes.
void BM_CaptureFilter(benchmark::State& state) {
  const ProbeType types[] = {ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable};
  const KeySlice slice{int(state.range(0)), state.range(0) ? 1u : 0u};
  pcap_t* pcap = pcap_open_dead(DLT_EN10MB, 65535);
  bpf_program prog{};
  if (pcap_compile(pcap, &prog, capture_filter(types, slice).c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    state.SkipWithError(pcap_geterr(pcap));
    pcap_close(pcap);
    return;
  }
  Bytes frame = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00};
  const Bytes ip = syn_ack(AddressFamily::kV4,
                           apply_slice(0x1234, token_bits(ProbeType::kTcpSyn, AddressFamily::kV4), slice));
  frame.insert(frame.end(), ip.begin(), ip.end());
  pcap_pkthdr hdr{};
  hdr.caplen = hdr.len = uint32_t(frame.size());
  int passed = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());
    passed += pcap_offline_filter(&prog, &hdr, frame.data()) != 0;
  }
  if (passed != int(state.iterations())) state.SkipWithError("the SYN-ACK of the slice did not pass");
  state.counters["bpf_insns"] = prog.bf_len;
  state.SetItemsProcessed(state.iterations());
  pcap_freecode(&prog);
  pcap_close(pcap);
}
BENCHMARK(BM_CaptureFilter)->ArgName("slice_bits")->Arg(0)->Arg(2);

void BM_Checksum1400(benchmark::State& state) {
  const Bytes b(1400, 0x5a);
  for (auto _ : state) benchmark::DoNotOptimize(wire::internet_checksum(b));
  state.SetBytesProcessed(int64_t(state.iterations()) * 1400);
}
BENCHMARK(BM_Checksum1400);

}  // namespace
}  // namespace netprobe

BENCHMARK_MAIN();
