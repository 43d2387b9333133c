// UDPquery's payload / expect / token pieces (src/svc/udp_query.h): table tests of good and bad rows.
#include "svc/udp_query.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "loopback_server.h"

namespace netprobe::svc {
namespace {

std::vector<uint8_t> B(std::string_view s) { return {s.begin(), s.end()}; }

struct BytesRow {
  const char* spec;
  bool ok;
  std::vector<uint8_t> want;  // when ok
  const char* why;            // substring of the reason when not ok
};

TEST(svc, ParseBytesTable) {
  const std::string too_long_text(kMaxPayloadBytes + 1, 'x');
  const std::string max_text(kMaxPayloadBytes, 'x');
  const BytesRow rows[] = {
      {"hello", true, B("hello"), ""},
      {"hex:00ff10", true, {0x00, 0xff, 0x10}, ""},
      {"hex:00 FF\t10\n", true, {0x00, 0xff, 0x10}, ""},
      {"base64:AAEC", true, {0, 1, 2}, ""},
      {"base64:AAE=", true, {0, 1}, ""},
      {"base64:AA", true, {0}, ""},
      {"hex:0", false, {}, "odd"},
      {"hex:0 0", false, {}, "inside a byte"},
      {"hex:zz", false, {}, "invalid"},
      {"hex:", false, {}, "empty"},
      {"", false, {}, "empty"},
      {"base64:A", false, {}, "truncated"},
      {"base64:A*==", false, {}, "invalid"},
      {too_long_text.c_str(), false, {}, "longer than"},
      {max_text.c_str(), true, std::vector<uint8_t>(kMaxPayloadBytes, 'x'), ""},
  };
  for (const auto& r : rows) {
    std::string why;
    const auto got = parse_bytes(r.spec, kMaxPayloadBytes, &why);
    EXPECT_EQ(got.has_value(), r.ok) << r.spec << ": " << why;
    if (got && r.ok) {
      EXPECT_EQ(*got, r.want) << r.spec;
    }
    if (!r.ok) {
      EXPECT_NE(why.find(r.why), std::string::npos) << r.spec << ": " << why;
    }
  }
  // A huge input is refused before decoding (bounded work).
  std::string why;
  EXPECT_FALSE(parse_bytes("hex:" + std::string(1 << 20, '0'), kMaxPayloadBytes, &why));
  EXPECT_EQ(why, "value too long");
}

TEST(svc, ValidateTokenTable) {
  struct Row {
    TokenSpec t;
    size_t payload;
    bool ok;
  } rows[] = {
      {{0, 2, 0}, 12, true},      // DNS ID
      {{40, 8, 24}, 48, true},    // NTP transmit -> originate timestamp
      {{0, 1, 0}, 12, false},     // too short to carry the index
      {{0, 9, 0}, 12, false},     // too long
      {{11, 2, 0}, 12, false},    // ends past the payload
      {{0, 2, 4095}, 12, false},  // reply offset past what judge() reads
      {{10, 2, 0}, 12, true},     // ends exactly at the payload's end
  };
  for (const auto& r : rows) {
    std::string why;
    EXPECT_EQ(validate_token(r.t, r.payload, &why), r.ok)
        << r.t.offset << "/" << r.t.length << "/" << r.t.reply_offset << ": " << why;
  }
}

TEST(svc, WriteTokenPlacesWBigEndian) {
  std::vector<uint8_t> p(12, 0xee);
  write_token(p, TokenSpec{0, 2, 0}, 0xabcd1234);
  EXPECT_EQ(p[0], 0xab);
  EXPECT_EQ(p[1], 0xcd);
  EXPECT_EQ(p[2], 0xee);
  std::vector<uint8_t> q(48, 0xee);
  write_token(q, TokenSpec{40, 8, 24}, 0xabcd1234);
  const std::vector<uint8_t> want = {0xab, 0xcd, 0x12, 0x34, 0, 0, 0, 0};
  EXPECT_EQ(std::vector<uint8_t>(q.begin() + 40, q.end()), want);
  EXPECT_EQ(q[39], 0xee);
  // A field that does not fit is left alone (never written out of bounds).
  std::vector<uint8_t> r(3, 0xee);
  write_token(r, TokenSpec{2, 2, 0}, 0xabcd1234);
  EXPECT_EQ(r, std::vector<uint8_t>(3, 0xee));
  EXPECT_EQ(token_carried_bits(TokenSpec{0, 2, 0}), 16);
  EXPECT_EQ(token_carried_bits(TokenSpec{0, 4, 0}), 32);
}

TEST(svc, ParseExpectTable) {
  struct Row {
    const char* kind;
    const char* value;
    bool ok;
    ExpectKind want;
  } rows[] = {
      {"any", "", true, ExpectKind::kAny},
      {"exact", "hex:0102", true, ExpectKind::kExact},
      {"contains", "PONG", true, ExpectKind::kContains},
      {"regex", "^\\+PONG", true, ExpectKind::kRegex},
      {"regex", "(a", false, ExpectKind::kAny},      // does not compile
      {"regex", "(a)\\1", false, ExpectKind::kAny},  // backreference: RE2 refuses (no backtracking)
      {"regex", "", false, ExpectKind::kAny},
      {"exact", "", false, ExpectKind::kAny},
      {"contains", "hex:0", false, ExpectKind::kAny},
      {"glob", "x", false, ExpectKind::kAny},
  };
  for (const auto& r : rows) {
    std::string why;
    const auto e = parse_expect(r.kind, r.value, &why);
    EXPECT_EQ(e.has_value(), r.ok) << r.kind << " " << r.value << ": " << why;
    if (e) {
      EXPECT_EQ(e->kind, r.want) << r.kind;
    }
    if (!r.ok) {
      EXPECT_FALSE(why.empty()) << r.kind << " " << r.value;
    }
  }
  std::string why;
  EXPECT_FALSE(parse_expect("regex", std::string(kMaxRegexPatternBytes + 1, 'a'), &why));
  // A pattern whose program exceeds the memory budget is refused at load, not at match time.
  EXPECT_FALSE(parse_expect("regex", "((((a{100}){100}){100}){100})", &why)) << "accepted";
}

Expect expect_of(const char* kind, const char* value) {
  std::string why;
  auto e = parse_expect(kind, value, &why);
  EXPECT_TRUE(e) << why;
  return e ? *e : Expect{};
}

TEST(svc, JudgeTable) {
  const uint32_t w = 0xabcd1234;
  const TokenSpec dns{0, 2, 0};
  const TokenSpec ntp{0, 8, 4};  // echoed 4 bytes later in the answer
  // A DNS-like answer: ID echoed, then content.
  const std::vector<uint8_t> dns_answer = {0xab, 0xcd, 0x81, 0x80, 'o', 'k'};
  const std::vector<uint8_t> dns_forged = {0xab, 0xce, 0x81, 0x80, 'o', 'k'};
  const std::vector<uint8_t> ntp_answer = {9, 9, 9, 9, 0xab, 0xcd, 0x12, 0x34, 0, 0, 0, 0};
  const std::vector<uint8_t> ntp_forged = {9, 9, 9, 9, 0xab, 0xcd, 0x12, 0x34, 0, 0, 0, 1};
  const std::vector<uint8_t> pong = B("+PONG\r\n");
  const std::vector<uint8_t> binary = {0x00, 0xff, 0x80, 'x'};
  const std::vector<uint8_t> empty;
  struct Row {
    const char* name;
    const std::vector<uint8_t>& answer;
    const TokenSpec* token;
    Expect expect;
    Outcome want;
  } rows[] = {
      {"dns any", dns_answer, &dns, Expect{}, Outcome::kAnswered},
      {"dns forged id", dns_forged, &dns, Expect{}, Outcome::kNotOurs},
      {"dns too short", pong, &ntp, Expect{}, Outcome::kNotOurs},
      {"dns exact skips the id", dns_answer, &dns, expect_of("exact", "hex:0000 8180 6f6b"),
       Outcome::kAnswered},
      {"dns exact wrong", dns_answer, &dns, expect_of("exact", "hex:0000 8180 6f6c"), Outcome::kUnexpected},
      {"dns exact longer", dns_answer, &dns, expect_of("exact", "hex:0000 8180 6f6b 00"),
       Outcome::kUnexpected},
      {"dns contains", dns_answer, &dns, expect_of("contains", "ok"), Outcome::kAnswered},
      {"ntp echoed", ntp_answer, &ntp, Expect{}, Outcome::kAnswered},
      {"ntp zero tail differs", ntp_forged, &ntp, Expect{}, Outcome::kNotOurs},
      {"no token exact", pong, nullptr, expect_of("exact", "+PONG\r\n"), Outcome::kAnswered},
      {"no token contains", pong, nullptr, expect_of("contains", "PONG"), Outcome::kAnswered},
      {"no token contains miss", pong, nullptr, expect_of("contains", "PANG"), Outcome::kUnexpected},
      {"regex anchored", pong, nullptr, expect_of("regex", "^\\+PONG"), Outcome::kAnswered},
      {"regex miss", pong, nullptr, expect_of("regex", "^PONG"), Outcome::kUnexpected},
      {"regex binary bytes", binary, nullptr, expect_of("regex", "^\\x00\\xff\\x80x$"), Outcome::kAnswered},
      {"empty answer contains", empty, nullptr, expect_of("contains", "x"), Outcome::kUnexpected},
      {"empty answer any", empty, nullptr, Expect{}, Outcome::kAnswered},
  };
  for (const auto& r : rows)
    EXPECT_EQ(to_string(judge(r.answer, r.token, w, r.expect)), to_string(r.want)) << r.name;
}

TEST(svc, JudgeReadsAtMostTheCap) {
  // What lies past kMaxJudgedAnswerBytes is not looked at: a match there does not count.
  std::vector<uint8_t> big(kMaxJudgedAnswerBytes + 10, 'a');
  big.back() = 'Z';
  EXPECT_EQ(judge(big, nullptr, 0, expect_of("contains", "Z")), Outcome::kUnexpected);
  EXPECT_EQ(judge(big, nullptr, 0, expect_of("regex", "Z")), Outcome::kUnexpected);
  EXPECT_EQ(judge(big, nullptr, 0, expect_of("regex", "^a+$")), Outcome::kAnswered);
}

// A UDP server on 127.0.0.1 answering one datagram with `answer(request)`.
class UdpServer : public LoopbackServer {
 public:
  template <typename F>
  explicit UdpServer(F answer) : LoopbackServer(SOCK_DGRAM) {
    set_receive_timeout(fd_);
    thread_ = std::thread([this, answer] {
      uint8_t b[2048];
      sockaddr_in peer{};
      socklen_t pl = sizeof peer;
      const ssize_t n = ::recvfrom(fd_, b, sizeof b, 0, reinterpret_cast<sockaddr*>(&peer), &pl);
      if (n < 0) return;
      for (const auto& reply : answer(std::vector<uint8_t>(b, b + n)))
        ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), pl);
    });
  }
};

TEST(svc, UdpQueryOverLoopback) {
  // A forged answer (wrong ID) first, then the echo: the forgery is ignored, the echo answers.
  UdpServer server([](std::vector<uint8_t> req) {
    std::vector<uint8_t> forged = req;
    forged[0] ^= 0xff;
    return std::vector<std::vector<uint8_t>>{forged, req};
  });
  UdpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = server.port();
  spec.payload = B("..hello");
  spec.token = TokenSpec{0, 2, 0};
  spec.expect = expect_of("exact", "hex:0000 68656c6c6f");  // the ID bytes are skipped
  const auto r = run_udp_query(spec, nullptr);
  EXPECT_EQ(r.outcome, "answered") << r.detail;
  EXPECT_EQ(r.not_ours, 1);
}

TEST(svc, UdpQueryWrongAnswerIsUnexpected) {
  UdpServer server([](std::vector<uint8_t>) { return std::vector<std::vector<uint8_t>>{B("nope")}; });
  UdpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = server.port();
  spec.payload = B("ping");
  spec.expect = expect_of("regex", "^pong");
  EXPECT_EQ(run_udp_query(spec, nullptr).outcome, "unexpected");
}

TEST(svc, UdpQueryClosedPort) {
  uint16_t port;
  {
    UdpServer server([](std::vector<uint8_t>) { return std::vector<std::vector<uint8_t>>{}; });
    port = server.port();
    // Wake the server's recvfrom so it exits; then nothing listens on the port.
    UdpQuerySpec wake;
    wake.host = "127.0.0.1";
    wake.port = port;
    wake.payload = B("x");
    wake.timeout = std::chrono::milliseconds(50);
    run_udp_query(wake, nullptr);
  }
  UdpQuerySpec spec;
  spec.host = "127.0.0.1";
  spec.port = port;
  spec.payload = B("ping");
  EXPECT_EQ(run_udp_query(spec, nullptr).outcome, "closed");
}

}  // namespace
}  // namespace netprobe::svc
