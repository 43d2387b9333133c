#include "test_dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace netprobe::testing {
namespace {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeAaaa = 28;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(uint8_t(v >> 8));
  out.push_back(uint8_t(v));
}

}  // namespace

TestDnsServer::TestDnsServer() {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    std::perror("TestDnsServer: cannot bind 127.0.0.1");
    std::abort();
  }
  port_ = ntohs(sa.sin_port);
  thread_ = std::thread([this] { serve(); });
}

TestDnsServer::~TestDnsServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
}

void TestDnsServer::set_a(const std::string& name, std::vector<std::string> addresses) {
  std::lock_guard lock(mu_);
  auto& r = records_[lower(name)];
  r.behaviour = Behaviour::kAnswer;
  r.a = std::move(addresses);
}

void TestDnsServer::set_aaaa(const std::string& name, std::vector<std::string> addresses) {
  std::lock_guard lock(mu_);
  auto& r = records_[lower(name)];
  r.behaviour = Behaviour::kAnswer;
  r.aaaa = std::move(addresses);
}

void TestDnsServer::set_behaviour(const std::string& name, Behaviour b) {
  std::lock_guard lock(mu_);
  records_[lower(name)].behaviour = b;
}

void TestDnsServer::remove(const std::string& name) {
  std::lock_guard lock(mu_);
  records_.erase(lower(name));
}

int TestDnsServer::queries(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = queries_.find(lower(name));
  return it == queries_.end() ? 0 : it->second;
}

void TestDnsServer::serve() {
  uint8_t buf[1500];
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;  // short timeout: notices stop_ quickly
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n <= 0) continue;
    auto reply = answer(buf, size_t(n));
    if (!reply.empty())
      ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
  }
}

// Returns the response to one query, or nothing to stay silent (garbage, or a name set to kDrop).
std::vector<uint8_t> TestDnsServer::answer(const uint8_t* q, size_t len) {
  if (len < 12 || (q[2] & 0x80) || ((q[4] << 8) | q[5]) != 1) return {};
  // QNAME: uncompressed labels in a query.
  size_t at = 12;
  std::string name;
  while (at < len && q[at] != 0) {
    const size_t l = q[at];
    if (l > 63 || at + 1 + l > len) return {};
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char*>(q + at + 1), l);
    at += 1 + l;
  }
  if (at + 5 > len) return {};
  const size_t question_end = at + 5;
  const uint16_t qtype = uint16_t((q[at + 1] << 8) | q[at + 2]);
  name = lower(name);

  Record rec;
  bool known = false;
  {
    std::lock_guard lock(mu_);
    ++queries_[name];
    if (auto it = records_.find(name); it != records_.end()) {
      rec = it->second;
      known = true;
    }
  }
  if (known && rec.behaviour == Behaviour::kDrop) return {};
  uint8_t rcode = 0;
  if (!known || rec.behaviour == Behaviour::kNxdomain) rcode = 3;
  if (known && rec.behaviour == Behaviour::kServfail) rcode = 2;

  std::vector<std::vector<uint8_t>> rdata;
  if (rcode == 0) {
    for (const auto& text : qtype == kTypeA      ? rec.a
                            : qtype == kTypeAaaa ? rec.aaaa
                                                 : std::vector<std::string>{}) {
      std::vector<uint8_t> bytes(qtype == kTypeA ? 4 : 16);
      if (inet_pton(qtype == kTypeA ? AF_INET : AF_INET6, text.c_str(), bytes.data()) == 1)
        rdata.push_back(bytes);
    }
  }
  std::vector<uint8_t> out(q, q + question_end);  // id, flags, counts and question, fixed below
  out[2] = uint8_t(0x80 | (q[2] & 0x79) | 0x04);  // QR, same opcode and RD, AA
  out[3] = uint8_t(0x80 | rcode);                 // RA
  out[6] = 0;
  out[7] = uint8_t(rdata.size());
  out[8] = out[9] = out[10] = out[11] = 0;
  for (const auto& d : rdata) {
    put16(out, 0xC00C);  // pointer to the question's name
    put16(out, qtype);
    put16(out, 1);  // IN
    put16(out, 0);
    put16(out, 0);  // TTL 0: nothing may be cached between refreshes
    put16(out, uint16_t(d.size()));
    out.insert(out.end(), d.begin(), d.end());
  }
  return out;
}

}  // namespace netprobe::testing
