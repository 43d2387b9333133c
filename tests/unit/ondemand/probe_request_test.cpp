// GET /probe parameters -> ProbeJob (src/ondemand/probe_request.h): a table of queries and scrape timeouts.
#include "ondemand/probe_request.h"

#include <gtest/gtest.h>

namespace netprobe::ondemand {
namespace {

OnDemandConfig config() {
  OnDemandConfig c;
  OnDemandModule tcp;
  tcp.name = "tcp_443";
  tcp.type = ProbeType::kTcpSyn;
  tcp.dst_port = 443;
  tcp.nb_packets = 5;
  tcp.timeout_s = 2;
  tcp.overrides["nb_packets"] = {1, 20};
  tcp.overrides["timeout"] = {0.1, 5};
  c.modules[tcp.name] = tcp;
  OnDemandModule icmp;
  icmp.name = "icmp";
  icmp.type = ProbeType::kIcmpPing;
  c.modules[icmp.name] = icmp;
  c.budgets.max_probes_per_test = 10;
  c.budgets.scrape_timeout_offset_s = 0.5;
  return c;
}

struct Row {
  const char* name;
  QueryParams params;
  std::optional<std::string> header;
  const char* error;  // substring; "" when it must succeed
  int nb_packets = 0;
  double timeout_s = 0;
};

TEST(ondemand_ProbeRequest, Table) {
  const std::vector<Row> rows = {
      {"module defaults", {{"target", "10.0.0.1"}, {"module", "tcp_443"}}, std::nullopt, "", 5, 2},
      {"scrape timeout lowers it", {{"target", "x"}, {"module", "tcp_443"}}, "1.5", "", 5, 1.0},
      {"module caps a long scrape", {{"target", "x"}, {"module", "tcp_443"}}, "10", "", 5, 2},
      {"override within bounds",
       {{"target", "x"}, {"module", "tcp_443"}, {"nb_packets", "8"}},
       std::nullopt,
       "",
       8,
       2},
      {"timeout override",
       {{"target", "x"}, {"module", "tcp_443"}, {"timeout", "0.25"}},
       std::nullopt,
       "",
       5,
       0.25},
      {"override above its bound",
       {{"target", "x"}, {"module", "tcp_443"}, {"nb_packets", "21"}},
       std::nullopt,
       "nb_packets must be an integer between 1 and 20"},
      {"override above the budget",
       {{"target", "x"}, {"module", "tcp_443"}, {"nb_packets", "15"}},
       std::nullopt,
       "above the budget of 10 probes per test"},
      {"fractional count",
       {{"target", "x"}, {"module", "tcp_443"}, {"nb_packets", "2.5"}},
       std::nullopt,
       "must be an integer"},
      {"not a number",
       {{"target", "x"}, {"module", "tcp_443"}, {"nb_packets", "1e999"}},
       std::nullopt,
       "must be an integer"},
      {"override not listed",
       {{"target", "x"}, {"module", "tcp_443"}, {"dst_port", "22"}},
       std::nullopt,
       "parameter \"dst_port\" is not an override module \"tcp_443\" allows"},
      {"no overrides at all",
       {{"target", "x"}, {"module", "icmp"}, {"nb_packets", "2"}},
       std::nullopt,
       "is not an override"},
      {"unknown parameter",
       {{"target", "x"}, {"module", "icmp"}, {"src_ip", "1.2.3.4"}},
       std::nullopt,
       "is not an override"},
      {"debug", {{"target", "x"}, {"module", "icmp"}, {"debug", "true"}}, std::nullopt, "", 3, 1},
      {"bad debug", {{"target", "x"}, {"module", "icmp"}, {"debug", "yes"}}, std::nullopt, "debug must be"},
      {"missing target", {{"module", "icmp"}}, std::nullopt, "target parameter is missing"},
      {"empty target", {{"target", ""}, {"module", "icmp"}}, std::nullopt, "target parameter is missing"},
      {"missing module", {{"target", "x"}}, std::nullopt, "module parameter is missing"},
      {"unknown module", {{"target", "x"}, {"module", "nope"}}, std::nullopt, "unknown module \"nope\""},
      {"scrape timeout below the offset", {{"target", "x"}, {"module", "icmp"}}, "0.4", "leaves no time"},
      {"scrape timeout garbage", {{"target", "x"}, {"module", "icmp"}}, "ten", "not a positive number"},
      {"scrape timeout negative", {{"target", "x"}, {"module", "icmp"}}, "-5", "not a positive number"},
      {"scrape timeout nan", {{"target", "x"}, {"module", "icmp"}}, "nan", "not a positive number"},
  };
  const OnDemandConfig c = config();
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const auto header = row.header ? std::optional<std::string_view>(*row.header) : std::nullopt;
    const auto job = build_probe_job(c, row.params, header);
    if (std::string(row.error).empty()) {
      ASSERT_TRUE(job.ok()) << job.error().message;
      EXPECT_EQ(job->nb_packets, row.nb_packets);
      EXPECT_DOUBLE_EQ(job->timeout_s, row.timeout_s);
    } else {
      ASSERT_FALSE(job.ok());
      EXPECT_NE(job.error().message.find(row.error), std::string::npos) << job.error().message;
    }
  }
}

TEST(ondemand_ProbeRequest, ModuleFixesTheRest) {
  const auto job = build_probe_job(config(), {{"target", "10.0.0.1"}, {"module", "tcp_443"}}, std::nullopt);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->type, ProbeType::kTcpSyn);
  EXPECT_EQ(job->dst_port, 443);
  EXPECT_EQ(job->src_port_a, 33000);
  EXPECT_TRUE(job->addresses.empty());  // pinned later by the target policy, never from the text
}

TEST(ondemand_ProbeRequest, AnIpLiteralIsProbedInItsOwnFamily) {
  OnDemandConfig c = config();
  c.modules["tcp_443"].address_family = AddressFamily::kV6;
  const auto v4 = build_probe_job(c, {{"target", "10.0.0.1"}, {"module", "tcp_443"}}, std::nullopt);
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->af, AddressFamily::kV4);
  for (const char* target : {"2001:db8::1", "[2001:db8::1]"}) {
    const auto v6 = build_probe_job(config(), {{"target", target}, {"module", "tcp_443"}}, std::nullopt);
    ASSERT_TRUE(v6.ok()) << target;
    EXPECT_EQ(v6->af, AddressFamily::kV6) << target;
  }
  // A name is resolved in the module's family.
  const auto name = build_probe_job(c, {{"target", "web.example"}, {"module", "tcp_443"}}, std::nullopt);
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->af, AddressFamily::kV6);
}

}  // namespace
}  // namespace netprobe::ondemand
