// The smaller pieces of the multiprocess engine: the restart counter family, the key-space check with
// worker slices, wait-status texts, the capability hint, probe type masks, target resolution.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "config/loader.h"
#include "launcher/launcher.h"
#include "metrics/prober_metrics.h"
#include "sandbox/privileges.h"
#include "supervisor/target_resolution.h"
#include "tests/support/metrics_lines.h"
#include "worker/worker_process.h"

namespace netprobe {
namespace {

TEST(worker_Metrics, WorkerRestartsCounter) {
  auto registry = std::make_shared<prometheus::Registry>();
  ProberMetrics metrics(registry, "probe1", {95, 50}, "0.1.0");
  EXPECT_TRUE(testing::sample_lines(*registry).count(R"(app_worker_restarts_total{probe_name="probe1"} 0)"));
  metrics.inc_worker_restarts();
  metrics.inc_worker_restarts();
  EXPECT_TRUE(testing::sample_lines(*registry).count(R"(app_worker_restarts_total{probe_name="probe1"} 2)"));
  // A probe rename moves the process-wide series to the new name (the old one disappears).
  metrics.set_probe_name("probe2");
  const auto lines = testing::sample_lines(*registry);
  EXPECT_TRUE(lines.count(R"(app_worker_restarts_total{probe_name="probe2"} 0)"));
  EXPECT_FALSE(lines.count(R"(app_worker_restarts_total{probe_name="probe1"} 2)"));
}

std::string udp_config(int nb_proc, int nb_packets) {
  return "global:\n"
         "  probe_name: p\n  interval: 30\n  nb_proc: " +
         std::to_string(nb_proc) +
         "\n  logging_level: INFO\n  prometheus_port: 8000\n  dns_update_interval: 300\n"
         "groups:\n  g:\n    src_port_a: 65000\n    src_port_z: 65000\n"
         "targets:\n  udp:\n    type: UDPunreachable\n    destination: 192.0.2.1\n    dst_port: 33434\n"
         "    nb_packets: " +
         std::to_string(nb_packets) + "\n";
}

TEST(worker_KeySpace, SliceBitsShrinkEachWorkersShare) {
  EXPECT_EQ(max_probes_per_key_space(ProbeType::kUdpUnreachable, AddressFamily::kV4, 0), 65535u);
  EXPECT_EQ(max_probes_per_key_space(ProbeType::kUdpUnreachable, AddressFamily::kV4, 2), 16383u);
  EXPECT_EQ(max_probes_per_key_space(ProbeType::kTcpSyn, AddressFamily::kV4, 3), 32767u);
  EXPECT_EQ(max_probes_per_key_space(ProbeType::kUdpUnreachable, AddressFamily::kV4, 40), 0u);
  // 16383 fits one of four workers' shares; 16384 does not, and the message says why.
  EXPECT_TRUE(load_config_string(udp_config(4, 16383), "t.yaml").ok());
  EXPECT_TRUE(load_config_string(udp_config(1, 16384), "t.yaml").ok());
  auto bad = load_config_string(udp_config(4, 16384), "t.yaml");
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(bad.diagnostics.errors.size(), 1u);
  EXPECT_EQ(bad.diagnostics.errors[0],
            R"(targets.udp: 16384 UDPunreachable probes per iteration to "192.0.2.1", more than )"
            R"(the 16383 that UDPunreachable's 16-bit token allows per destination with nb_proc 4 )"
            R"((2 of its bits select the worker); lower nb_packets or nb_proc)");
}

TEST(worker_Launcher, DescribesWaitStatus) {
  EXPECT_EQ(describe_wait_status(3 << 8), "exited with status 3");
  EXPECT_EQ(describe_wait_status(SIGKILL), "killed by signal 9 (Killed)");
}

int idle_worker(int, const WorkerSpawn&) { return 0; }

TEST(worker_Launcher, ConfinementFailureIsAStartError) {
  // uid 0 is refused by the user switch: the launcher logs why and exits before it is ready.
  auto refused = LauncherClient::start(&idle_worker, LauncherConfinement{RunAs{"root", 0, 0}, false});
  ASSERT_TRUE(refused.ok()) << refused.error().message;
  const Status s = refused->wait_ready();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("could not confine"), std::string::npos) << s.error().message;
  EXPECT_EQ(refused->pid(), -1);  // reaped
  if (geteuid() != 0) GTEST_SKIP() << "a launcher that keeps CAP_NET_RAW needs root";
  auto ok = LauncherClient::start(&idle_worker, LauncherConfinement{std::nullopt, false});
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->wait_ready().ok());
  EXPECT_TRUE(ok->stop(Nanos(2'000'000'000)));
}

TEST(worker_Privileges, MissingCapabilityMessageSaysHowToGrantIt) {
  const std::string m = missing_net_raw_message("/usr/bin/netprobe");
  EXPECT_NE(m.find("CAP_NET_RAW"), std::string::npos);
  EXPECT_NE(m.find("root"), std::string::npos);
  EXPECT_NE(m.find("setcap cap_net_raw+ep /usr/bin/netprobe"), std::string::npos);
  EXPECT_NE(m.find("AmbientCapabilities=CAP_NET_RAW"), std::string::npos);
}

TEST(worker_Process, ProbeTypeMasks) {
  const std::vector<ProbeType> all{ProbeType::kTcpSyn, ProbeType::kIcmpPing, ProbeType::kUdpUnreachable};
  EXPECT_EQ(probe_types_mask(all), 7u);
  EXPECT_EQ(probe_types_of_mask(7), all);
  EXPECT_EQ(probe_types_of_mask(probe_types_mask(std::vector<ProbeType>{ProbeType::kIcmpPing})),
            std::vector<ProbeType>{ProbeType::kIcmpPing});
  EXPECT_TRUE(probe_types_of_mask(0).empty());
}

// A scripted resolver: answers from a table, one poll() later, as the Resolver contract says.
class TableResolver final : public Resolver {
 public:
  std::map<std::string, Resolution> table;
  std::vector<std::function<void()>> queued;
  void resolve(const std::string& host, AddressFamily, std::function<void(Resolution)> done) override {
    auto it = table.find(host);
    if (it == table.end()) return;  // never answers: the caller's timeout applies
    queued.push_back([done, r = it->second] { done(r); });
  }
  int poll(Nanos) override {
    auto q = std::move(queued);
    queued.clear();
    for (auto& f : q) f();
    return int(q.size());
  }
  size_t pending() const override { return queued.size() + hanging; }
  size_t hanging = 0;
};

TEST(worker_Resolution, LiteralsSubnetsNamesAndFailures) {
  Config c;
  auto add = [&](const std::string& name, const std::string& dest, bool subnet = false) {
    TargetConfig t;
    t.name = name;
    t.destination = dest;
    t.is_subnet = subnet;
    t.groups = {"g"};
    c.targets[name] = t;
  };
  add("literal", "192.0.2.7");
  add("net", "10.0.0.0/30", true);
  add("name", "web.example");
  add("nx", "nx.example");
  add("silent", "silent.example");
  c.targets["nogroup"] = c.targets["literal"];
  c.targets["nogroup"].groups.clear();
  TableResolver r;
  r.table["web.example"] =
      Resolution{true, {*IpAddress::parse("192.0.2.80"), *IpAddress::parse("192.0.2.81")}, ""};
  r.table["nx.example"] = Resolution{false, {}, "NXDOMAIN"};
  FakeClock clock;
  const auto out = resolve_destinations(r, c, clock, Nanos(1'000'000'000));
  EXPECT_FALSE(out.count("nogroup"));  // never probed: not resolved either
  EXPECT_TRUE(out.at("literal").ok);
  EXPECT_EQ(out.at("literal").hosts, std::vector<IpAddress>{*IpAddress::parse("192.0.2.7")});
  EXPECT_TRUE(out.at("net").ok);
  EXPECT_TRUE(out.at("net").subnet);
  EXPECT_TRUE(out.at("net").hosts.empty());  // expanded by the worker
  EXPECT_TRUE(out.at("name").ok);
  EXPECT_EQ(out.at("name").hosts, std::vector<IpAddress>{*IpAddress::parse("192.0.2.80")});  // the first only
  EXPECT_FALSE(out.at("nx").ok);
  EXPECT_EQ(out.at("nx").error, "NXDOMAIN");
  EXPECT_FALSE(out.at("silent").ok);
  EXPECT_EQ(out.at("silent").error, "timeout");
}

TEST(worker_Resolution, GetaddrinfoResolverAnswersFromPoll) {
  GetaddrinfoResolver r;
  bool called = false;
  r.resolve("localhost", AddressFamily::kV4, [&](Resolution res) {
    called = true;
    EXPECT_TRUE(res.ok);
    ASSERT_FALSE(res.addresses.empty());
    EXPECT_EQ(res.addresses[0], *IpAddress::parse("127.0.0.1"));
  });
  EXPECT_FALSE(called);  // never from inside resolve()
  EXPECT_EQ(r.pending(), 1u);
  EXPECT_EQ(r.poll(Nanos(0)), 1);
  EXPECT_TRUE(called);
  EXPECT_EQ(r.pending(), 0u);
}

}  // namespace
}  // namespace netprobe
