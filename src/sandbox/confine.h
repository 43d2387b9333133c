#pragma once
// Confinement of netprobe's processes beyond capabilities and the user (docs/architecture.md#confinement):
//
//   no-new-privs    PR_SET_NO_NEW_PRIVS: no execve() can gain a privilege (setuid, file capabilities)
//   non-dumpable    PR_SET_DUMPABLE 0: processes of the same user (and the others of netprobe's tree) cannot
//                   ptrace them or read their memory through /proc; no core dump of probe secrets
//   empty root      launcher and workers: a private mount namespace whose root is an empty read-only tmpfs
//                   (they read no file once started); needs CAP_SYS_ADMIN, i.e. a start as root
//   seccomp         a deny list per process kind (seccomp_deny_list()): deny lists, not allow lists, so that
//                   libraries (the HTTP server's epoll/eventfd/accept4/threads, c-ares, libpcap) keep
//                   working as they evolve
#include <string>
#include <vector>

#include "core/result.h"

namespace netprobe {

enum class ProcessKind { kSupervisor, kLauncher, kWorker };

Status set_no_new_privs();
Status set_non_dumpable();

// Unshares the mount namespace, mounts an empty read-only tmpfs and makes it the root (pivot_root, or
// chroot where the current root is not a mount point) and the working directory. Inherited by every
// process forked afterwards. An Error when not privileged enough (needs CAP_SYS_ADMIN): callers then go
// on without it.
Status enter_empty_root();

// What a denied system call does.
enum class DenyAction {
  kErrno,  // fails with EPERM: a library may try it and cope
  kNosys,  // fails with ENOSYS: glibc falls back to an older call that the filter can inspect
  kKill,   // SIGSYS kills the process: no code of it makes the call, so only an exploit or a bug does
};

struct DeniedSyscall {
  std::string name;       // as in libseccomp (seccomp_syscall_resolve_name)
  std::string condition;  // empty: always; else a human-readable condition on the arguments
  DenyAction action = DenyAction::kErrno;
  std::string why;
};

// The rules one process kind installs. A worker inherits its launcher's filter (seccomp filters stack
// across fork) and adds its own: seccomp_deny_list(kWorker) is only the worker's additions;
// effective_deny_list(kWorker) is the union.
std::vector<DeniedSyscall> seccomp_deny_list(ProcessKind kind);
std::vector<DeniedSyscall> effective_deny_list(ProcessKind kind);

// Installs seccomp_deny_list(kind) on every thread of the calling process (default: allow). Needs
// no-new-privs (set here too). The worker's filter checks tgkill() against getpid() of the caller.
Status install_seccomp(ProcessKind kind);

const char* process_kind_name(ProcessKind kind);

}  // namespace netprobe
