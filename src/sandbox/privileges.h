#pragma once
// Capabilities (libcap). Who holds what once netprobe runs:
//   supervisor  nothing (it parses HTTP requests and the configuration)
//   launcher    CAP_NET_RAW only, to fork workers that can open raw sockets and captures; it reads
//               nothing from the network and only fixed-size records from the supervisor
//   worker      CAP_NET_RAW until its raw sockets and capture are open, then nothing
// Every drop also sets PR_SET_NO_NEW_PRIVS, so that no later execve() (inventory plugins) can gain a
// capability back from a setuid or file-capability binary, nor from uid 0 (with uid 0 the bounding set
// and SECBIT_NOROOT are locked down as well where CAP_SETPCAP allows it).
#include <string>

#include "core/result.h"

namespace netprobe {

// True when CAP_NET_RAW is in the permitted set; raises it into the effective set if needed.
bool ensure_net_raw();
// What to print when ensure_net_raw() fails: the missing capability and the three ways to grant it.
std::string missing_net_raw_message(const std::string& binary_path);

// Keeps CAP_NET_RAW (permitted + effective) and drops every other capability (launcher).
Status restrict_to_net_raw();
// Drops every capability: effective, permitted, inheritable, ambient (supervisor, worker).
Status drop_all_capabilities();

// The CapEff/CapPrm lines of /proc/self/status, for logs ("CapEff=0000000000000000 CapPrm=...").
std::string capability_summary();

}  // namespace netprobe
