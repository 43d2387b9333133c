#pragma once
// A Resolver whose answers are scripted per name (tests of the service checks' name resolution): answers
// come from poll(), as c-ares'; a name without an answer is never answered (a black-holed DNS server), and
// poll() then sleeps for the wait it is given, as the real one would. Records every resolve() and every
// poll()'s max_wait, to assert that no DNS was asked for a literal and that the waits were bounded by the
// check's deadline. One thread only, as the real one.
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dns/resolver.h"

namespace netprobe::testing_doubles {

// name -> addresses
using Answers = std::map<std::string, std::vector<std::string>>;

class ScriptedResolver final : public Resolver {
 public:
  // name -> addresses returned for any family asked (so an answer of the wrong family can be scripted);
  // an empty list is an error answer "NXDOMAIN".
  explicit ScriptedResolver(Answers answers) : answers_(std::move(answers)) {}

  void resolve(const std::string& host, AddressFamily af, std::function<void(Resolution)> done) override {
    queries.emplace_back(host, af);
    pending_.emplace_back(host, std::move(done));
  }
  int poll(Nanos max_wait) override {
    waits.push_back(max_wait);
    int ran = 0;
    std::vector<std::pair<std::string, std::function<void(Resolution)>>> keep;
    for (auto& [host, done] : std::exchange(pending_, {})) {
      auto it = answers_.find(host);
      if (it == answers_.end()) {
        keep.emplace_back(host, std::move(done));
        continue;
      }
      Resolution r;
      for (const auto& a : it->second) r.addresses.push_back(*IpAddress::parse(a));
      r.ok = !r.addresses.empty();
      if (!r.ok) r.error = "NXDOMAIN";
      done(std::move(r));
      ++ran;
    }
    pending_ = std::move(keep);
    if (ran == 0 && !pending_.empty()) std::this_thread::sleep_for(max_wait);
    return ran;
  }
  size_t pending() const override { return pending_.size(); }

  // Answers `host` from now on (a late answer to a query abandoned at its deadline).
  void answer_later(const std::string& host, std::vector<std::string> addresses) {
    answers_[host] = std::move(addresses);
  }

  std::vector<std::pair<std::string, AddressFamily>> queries;
  std::vector<Nanos> waits;

 private:
  std::map<std::string, std::vector<std::string>> answers_;
  std::vector<std::pair<std::string, std::function<void(Resolution)>>> pending_;
};

}  // namespace netprobe::testing_doubles
