#include "sandbox/user.h"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sysexits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace netprobe {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

std::optional<RunAs> lookup_system_user(const std::string& name) {
  if (name.empty() || name.size() > 256) return std::nullopt;
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 4);
      continue;
    }
    break;
  }
  if (!found) return std::nullopt;
  return RunAs{found->pw_name, found->pw_uid, found->pw_gid};
}

UserChoice choose_user(const std::optional<std::string>& requested, uid_t euid, const UserLookup& lookup) {
  auto refuse = [](int code, std::string message) {
    return UserChoice{std::nullopt, code, std::move(message)};
  };
  std::optional<RunAs> user;
  if (requested) {
    if (requested->empty()) return refuse(EX_USAGE, "--user needs a user name");
    user = lookup(*requested);
    if (!user)
      return refuse(EX_USAGE, fmt::format("--user {}: no such user (create one: useradd --system "
                                          "--no-create-home netprobe)",
                                          *requested));
  } else if (euid != 0) {
    return UserChoice{std::nullopt, 0,
                      fmt::format("running as uid {} (the user netprobe was started as)", euid)};
  } else {
    for (const char* name : {"netprobe", "nobody"}) {
      if ((user = lookup(name))) break;
    }
    if (!user)
      return refuse(EX_USAGE, "neither a `netprobe` nor a `nobody` user exists: name one with --user");
  }
  const std::string how = requested ? "--user " + *requested : "default user " + user->name;
  if (user->uid == 0)
    return refuse(EX_USAGE, fmt::format("{}: refusing to run as root (uid 0): netprobe drops root once its "
                                        "sockets are open; name an unprivileged user",
                                        how));
  if (user->gid == 0)
    return refuse(EX_USAGE, fmt::format("{}: refusing a user whose primary group is root (gid 0)", how));
  if (euid != 0) {
    if (user->uid == euid)
      return UserChoice{std::nullopt, 0, fmt::format("running as {} (uid {})", user->name, euid)};
    return refuse(EX_NOPERM,
                  fmt::format("{}: cannot switch user: netprobe was started as uid {}, and only root may "
                              "switch; start it as root or as {}",
                              how, euid, user->name));
  }
  std::string message =
      fmt::format("switching to user {} (uid {}, gid {})", user->name, user->uid, user->gid);
  return UserChoice{std::move(user), 0, std::move(message)};
}

Status switch_user(const RunAs& user, bool keep_net_raw) {
  if (user.uid == 0 || user.gid == 0) return Error{"refusing to switch to uid or gid 0"};
  if (keep_net_raw && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
    return Error{"PR_SET_KEEPCAPS: " + errno_text(errno)};
  // Groups first: once the uid is not 0 any more, they can no longer be changed.
  if (setgroups(0, nullptr) != 0) return Error{"setgroups: " + errno_text(errno)};
  if (setresgid(user.gid, user.gid, user.gid) != 0)
    return Error{fmt::format("setresgid({}): {}", user.gid, errno_text(errno))};
  if (setresuid(user.uid, user.uid, user.uid) != 0)
    return Error{fmt::format("setresuid({}): {}", user.uid, errno_text(errno))};
  if (keep_net_raw) prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != user.uid || eu != user.uid ||
      su != user.uid || rg != user.gid || eg != user.gid || sg != user.gid)
    return Error{"the user switch did not take effect"};
  if (getgroups(0, nullptr) != 0) return Error{"supplementary groups are still set"};
  // Paranoia (CERT POS37-C): root must be out of reach now.
  if (setuid(0) == 0) return Error{"uid 0 could be regained after the switch"};
  return {};
}

}  // namespace netprobe
