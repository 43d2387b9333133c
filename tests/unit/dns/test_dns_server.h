#pragma once
// A tiny authoritative DNS responder on 127.0.0.1:<ephemeral>/UDP for the resolver tests: it parses the
// question and answers A/AAAA from a table, NXDOMAIN for unknown names, SERVFAIL, or never answers. Real
// c-ares traffic on loopback, nothing leaves the host.
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace netprobe::testing {

class TestDnsServer {
 public:
  enum class Behaviour { kAnswer, kNxdomain, kServfail, kDrop };

  TestDnsServer();  // binds and starts serving; aborts the test binary if loopback is unusable
  ~TestDnsServer();
  TestDnsServer(const TestDnsServer&) = delete;
  TestDnsServer& operator=(const TestDnsServer&) = delete;

  uint16_t port() const { return port_; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }  // for CaresOptions::servers

  // Records of a name (case-insensitive, no trailing dot). Replaces what the name had for that type.
  void set_a(const std::string& name, std::vector<std::string> addresses);
  void set_aaaa(const std::string& name, std::vector<std::string> addresses);
  void set_behaviour(const std::string& name, Behaviour b);
  void remove(const std::string& name);  // back to NXDOMAIN
  // Queries received for a name, any type.
  int queries(const std::string& name) const;

 private:
  struct Record {
    Behaviour behaviour = Behaviour::kAnswer;
    std::vector<std::string> a, aaaa;
  };
  void serve();
  std::vector<uint8_t> answer(const uint8_t* q, size_t len);

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, Record> records_;
  std::map<std::string, int> queries_;
  std::thread thread_;
};

}  // namespace netprobe::testing
