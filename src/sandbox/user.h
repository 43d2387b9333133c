#pragma once
// The unprivileged user every netprobe process runs as once its sockets are open (`netprobe run
// --user NAME`). Started as root, the supervisor, the launcher and the workers all switch to it; the
// launcher keeps CAP_NET_RAW across the switch (PR_SET_KEEPCAPS) so that the workers it forks can still
// open raw sockets and a capture, and every other process keeps no capability at all.
//
// Which user (choose_user):
//   started as root   --user NAME, else `netprobe` when that user exists, else `nobody`
//   started as uid N  stays uid N (systemd's User=, or a setcap'ed binary run by a user); --user may only
//                     name that same user, since switching needs root
// Refused with EX_USAGE (64): root or any user of uid 0, a user whose primary group is 0, an unknown
// name. Refused with EX_NOPERM (77): a different user when not started as root.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "core/result.h"

namespace netprobe {

struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  friend bool operator==(const RunAs&, const RunAs&) = default;
};

struct UserChoice {
  std::optional<RunAs> user;  // switch to it; nullopt: keep the identity netprobe was started with
  int exit_code = 0;          // non-zero: refuse to start and print `message`
  std::string message;        // the error, or what was decided (for the start-up log)
};

// Name -> user (the system's: getpwnam_r, so NSS too); injectable for tests.
using UserLookup = std::function<std::optional<RunAs>(const std::string& name)>;
std::optional<RunAs> lookup_system_user(const std::string& name);

UserChoice choose_user(const std::optional<std::string>& requested, uid_t euid, const UserLookup& lookup);

// Switches the calling process (every thread: glibc broadcasts set*id) to `user`: no supplementary
// group, real/effective/saved gid and uid of the user, checked afterwards (uid 0 can no longer be
// regained). With keep_net_raw the permitted capabilities survive the switch (effective ones are
// cleared by the kernel: restrict_to_net_raw() raises CAP_NET_RAW again); without it the kernel clears
// every capability. Credentials changes reset PR_SET_PDEATHSIG and the dumpable flag: callers set them
// again afterwards.
Status switch_user(const RunAs& user, bool keep_net_raw);

}  // namespace netprobe
