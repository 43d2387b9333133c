#include "session/check_result.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace netprobe {
namespace {

std::string percent(double ratio) { return fmt::format("{:g} %", std::round(ratio * 10000) / 100); }

std::string endpoint(const TargetConfig& t) {
  if (!t.dst_port || t.type == ProbeType::kIcmpPing) return t.destination;
  const bool v6 = t.destination.find(':') != std::string::npos;  // a hostname never has one
  return v6 ? fmt::format("[{}]:{}", t.destination, *t.dst_port)
            : fmt::format("{}:{}", t.destination, *t.dst_port);
}

}  // namespace

void CheckResult::add(const GroupMeasurement& m) {
  sent += m.sent;
  lost += m.lost;
  unexpected += m.unexpected;
  closed += m.closed;
  rtts_s.insert(rtts_s.end(), m.rtts_s.begin(), m.rtts_s.end());
  for (const auto& [code, n] : m.icmp_errors) icmp_errors[code] += n;
}

std::optional<double> CheckResult::max_loss() const {
  const auto& t = target->threshold.loss;
  if (!t) return std::nullopt;
  return *t <= 1 ? *t : *t / 100;
}

bool CheckResult::ok() const {
  if (!not_probed.empty() || sent == 0) return false;
  if (unexpected || closed) return false;  // UDPquery: the service answered wrong, or is not there
  if (auto m = max_loss()) return *m == 0 ? lost == 0 : loss_ratio() < *m;
  return lost < sent;
}

double CheckResult::median_rtt_s() const {
  if (rtts_s.empty()) return 0;
  std::vector<double> v = rtts_s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string CheckResult::line() const {
  std::string detail;
  if (!not_probed.empty()) {
    detail = "not probed: " + not_probed;
  } else {
    if (ok()) {
      detail = rtts_s.empty() ? "no RTT" : fmt::format("{:.2f} ms", median_rtt_s() * 1e3);
      if (lost) detail += fmt::format(", {} loss", percent(loss_ratio()));
    } else {
      detail = percent(loss_ratio()) + " loss";
    }
    if (auto m = max_loss()) detail += fmt::format(" (threshold {})", percent(*m));
    if (unexpected) detail += fmt::format(", {} unexpected", unexpected);
    if (closed) detail += fmt::format(", {} closed", closed);
    if (!icmp_errors.empty()) {
      std::vector<std::string> errors;
      for (const auto& [code, n] : icmp_errors) errors.push_back(fmt::format("{} x{}", code, n));
      detail += fmt::format(", ICMP {}", fmt::join(errors, " "));
    }
  }
  return fmt::format("{} {} {} {} [{}/{}]", to_string(target->type), endpoint(*target),
                     ok() ? "OK" : "FAILED", detail, target->name, group);
}

}  // namespace netprobe
