#include "sandbox/privileges.h"

#include <linux/securebits.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

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
  if (current) {
    // A switch of user with PR_SET_KEEPCAPS (sandbox/user.h) keeps the permitted set but clears the
    // effective one: raise CAP_SETPCAP again if it is permitted, for the bounding-set drop below.
    cap_get_flag(current, CAP_SETPCAP, CAP_PERMITTED, &setpcap);
    const cap_value_t pcap = CAP_SETPCAP;
    if (setpcap == CAP_SET &&
        (cap_set_flag(current, CAP_EFFECTIVE, 1, &pcap, CAP_SET) != 0 || cap_set_proc(current) != 0))
      setpcap = CAP_CLEAR;
    cap_free(current);
  }
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
  // From capget(2) rather than /proc/self/status: the launcher and the workers see no /proc.
  uint64_t eff = 0, prm = 0;
  if (cap_t caps = cap_get_proc()) {
    for (cap_value_t c = 0; c <= CAP_LAST_CAP && c < 64; ++c) {
      cap_flag_value_t v = CAP_CLEAR;
      if (cap_get_flag(caps, c, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET) eff |= uint64_t(1) << c;
      if (cap_get_flag(caps, c, CAP_PERMITTED, &v) == 0 && v == CAP_SET) prm |= uint64_t(1) << c;
    }
    cap_free(caps);
  }
  return fmt::format("CapEff={:016x} CapPrm={:016x}", eff, prm);
}

}  // namespace netprobe
