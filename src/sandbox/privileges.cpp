#include "sandbox/privileges.h"

#include <linux/securebits.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

namespace netprobe {
namespace {

std::string errno_text() { return std::strerror(errno); }

// Lowers the bounding set to `keep` and locks uid 0's automatic capabilities, when allowed (CAP_SETPCAP:
// root). Without CAP_SETPCAP (setcap'ed binary run by a user) exec cannot gain anything beyond file
// capabilities, which NO_NEW_PRIVS neutralises, so failing here is not an error.
void lock_down_exec(const cap_value_t* keep, int nkeep) {
  cap_t current = cap_get_proc();
  cap_flag_value_t setpcap = CAP_CLEAR;
  if (current) cap_get_flag(current, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap);
  if (current) cap_free(current);
  if (setpcap == CAP_SET) {
    for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
      bool kept = false;
      for (int i = 0; i < nkeep; ++i) kept = kept || keep[i] == c;
      if (!kept) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
    }
    // uid 0 would otherwise get every (bounding) capability back on execve().
    prctl(PR_SET_SECUREBITS,
          SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
              SECBIT_KEEP_CAPS_LOCKED,
          0, 0, 0);
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

Status set_only(const cap_value_t* keep, int nkeep) {
  lock_down_exec(keep, nkeep);
  cap_t caps = cap_init();  // all clear
  if (!caps) return Error{"cap_init: " + errno_text()};
  if (nkeep > 0 && (cap_set_flag(caps, CAP_PERMITTED, nkeep, keep, CAP_SET) != 0 ||
                    cap_set_flag(caps, CAP_EFFECTIVE, nkeep, keep, CAP_SET) != 0)) {
    cap_free(caps);
    return Error{"cap_set_flag: " + errno_text()};
  }
  const int rc = cap_set_proc(caps);
  cap_free(caps);
  if (rc != 0) return Error{"cap_set_proc: " + errno_text()};
  return {};
}

}  // namespace

bool ensure_net_raw() {
  cap_t caps = cap_get_proc();
  if (!caps) return false;
  cap_flag_value_t permitted = CAP_CLEAR, effective = CAP_CLEAR;
  cap_get_flag(caps, CAP_NET_RAW, CAP_PERMITTED, &permitted);
  cap_get_flag(caps, CAP_NET_RAW, CAP_EFFECTIVE, &effective);
  bool ok = permitted == CAP_SET;
  if (ok && effective != CAP_SET) {
    const cap_value_t raw = CAP_NET_RAW;
    ok = cap_set_flag(caps, CAP_EFFECTIVE, 1, &raw, CAP_SET) == 0 && cap_set_proc(caps) == 0;
  }
  cap_free(caps);
  return ok;
}

std::string missing_net_raw_message(const std::string& binary_path) {
  return fmt::format(
      "netprobe needs the CAP_NET_RAW capability (raw sockets and packet capture), and this process does not "
      "have it. Grant it in one of these ways:\n"
      "  - run netprobe as root;\n"
      "  - give the binary the file capability: sudo setcap cap_net_raw+ep {}\n"
      "  - under systemd, in the [Service] section: AmbientCapabilities=CAP_NET_RAW and "
      "CapabilityBoundingSet=CAP_NET_RAW\n"
      "netprobe drops it again in every process that does not need it (the /metrics server holds none).",
      binary_path.empty() ? "build/netprobe" : binary_path);
}

Status restrict_to_net_raw() {
  const cap_value_t keep[] = {CAP_NET_RAW};
  return set_only(keep, 1);
}

Status drop_all_capabilities() { return set_only(nullptr, 0); }

std::string capability_summary() {
  std::ifstream in("/proc/self/status");
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0 || line.rfind("CapPrm:", 0) == 0) {
      std::string v = line.substr(7);
      v.erase(0, v.find_first_not_of(" \t"));
      if (!out.empty()) out += ' ';
      out += line.substr(0, 6) + "=" + v;
    }
  }
  return out;
}

}  // namespace netprobe
