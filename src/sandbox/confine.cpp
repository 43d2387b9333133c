#include "sandbox/confine.h"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include <fmt/format.h>

namespace netprobe {
namespace {

std::string errno_text(const char* what) { return fmt::format("{}: {}", what, std::strerror(errno)); }

// Conditions on arguments, x86_64/aarch64 argument order (clone's flags are its first argument).
enum class Cond {
  kAlways,
  kOpenForWrite,    // open/openat flags ask for writing, creating or truncating
  kCloneNamespace,  // clone() flags create a namespace
  kCloneProcess,    // clone() without CLONE_THREAD: a new process
  kForeignTgkill,   // tgkill() to another process than the caller
};

// System calls denied alike (same condition, action and reason).
struct Rule {
  Cond cond;
  DenyAction action;  // in the launcher and the workers; the supervisor turns kKill into kErrno
  const char* why;
  std::array<const char*, 16> names;  // the first nullptr ends the list
};

constexpr DenyAction kKill = DenyAction::kKill;
constexpr DenyAction kErrno = DenyAction::kErrno;
constexpr DenyAction kNosys = DenyAction::kNosys;

// Every process: the kernel attack surface and host administration that no netprobe process (nor an
// inventory plug-in) needs.
constexpr Rule kCommon[] = {
    {Cond::kAlways,
     kKill,
     "reads or writes another process's memory",
     {"ptrace", "process_vm_readv", "process_vm_writev"}},
    {Cond::kAlways,
     kKill,
     "a kernel interface netprobe never uses, and a frequent way into the kernel",
     {"perf_event_open", "bpf", "userfaultfd"}},
    {Cond::kAlways,
     kKill,
     "a second system call interface that seccomp cannot see into",
     {"io_uring_setup", "io_uring_enter", "io_uring_register"}},
    {Cond::kAlways,
     kKill,
     "changes the filesystem view",
     {"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
      "open_tree", "mount_setattr"}},
    {Cond::kAlways,
     kKill,
     "creates or joins namespaces (an unprivileged user namespace exposes kernel code meant for root)",
     {"unshare", "setns"}},
    {Cond::kCloneNamespace,
     kKill,
     "creates or joins namespaces (an unprivileged user namespace exposes kernel code meant for root)",
     {"clone"}},
    {Cond::kAlways,
     kNosys,
     "its flags are in memory that seccomp cannot read; glibc falls back to clone(), whose flags are checked",
     {"clone3"}},
    {Cond::kAlways,
     kKill,
     "administers the host",
     {"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon",
      "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "iopl", "ioperm", "uselib", "vhangup"}},
    {Cond::kAlways,
     kKill,
     "administers the host",
     {"lookup_dcookie", "settimeofday", "clock_settime", "sethostname", "setdomainname"}},
    {Cond::kAlways,
     kKill,
     "opens files by handle, around path permissions",
     {"open_by_handle_at", "name_to_handle_at"}},
};

// The launcher, and every worker through it (filters are inherited across fork).
constexpr const char* kWhyWrite = "they write no file (their root is an empty read-only tmpfs anyway)";
constexpr Rule kLauncher[] = {
    {Cond::kAlways, kKill, "the launcher and the workers never run a program", {"execve", "execveat"}},
    {Cond::kAlways,
     kKill,
     "kernel keyrings: never used by the launcher and the workers",
     {"keyctl", "add_key", "request_key"}},
    {Cond::kAlways,
     kKill,
     "their identity is fixed once started",
     {"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid",
      "setfsgid"}},
    {Cond::kAlways,
     kKill,
     "they serve nothing: only the supervisor listens (/metrics)",
     {"listen", "accept", "accept4"}},
    // EPERM rather than a kill: a library may try to open or create a file and cope with a refusal.
    {Cond::kOpenForWrite, kErrno, kWhyWrite, {"open", "openat"}},
    {Cond::kAlways,
     kNosys,
     "its flags are in memory that seccomp cannot read; glibc uses openat()",
     {"openat2"}},
    {Cond::kAlways,
     kErrno,
     kWhyWrite,
     {"creat", "truncate", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
      "rmdir", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat"}},
    {Cond::kAlways,
     kErrno,
     kWhyWrite,
     {"chown", "lchown", "fchownat", "mknod", "mknodat", "setxattr", "lsetxattr", "removexattr",
      "lremovexattr", "utime", "utimes", "utimensat", "futimesat"}},
};

// A worker, on top of its launcher's rules, once its sockets are open and its capabilities dropped.
constexpr const char* kWhySignal = "a worker signals only itself (abort, its own threads)";
constexpr Rule kWorker[] = {
    {Cond::kAlways, kKill, "a worker starts no process (it has its threads already)", {"fork", "vfork"}},
    {Cond::kCloneProcess, kKill, "a worker starts no process (it has its threads already)", {"clone"}},
    {Cond::kAlways, kKill, "its capabilities are dropped for good", {"capset"}},
    {Cond::kAlways, kKill, kWhySignal, {"kill", "tkill", "pidfd_open", "pidfd_send_signal"}},
    {Cond::kForeignTgkill, kKill, kWhySignal, {"tgkill"}},
    {Cond::kAlways, kKill, "reads or writes another process's memory", {"pidfd_getfd"}},
};

// The rule tables a process installs itself (a worker inherits its launcher's too).
std::vector<std::span<const Rule>> own_rules(ProcessKind kind) {
  switch (kind) {
    case ProcessKind::kSupervisor:
      return {kCommon};
    case ProcessKind::kLauncher:
      return {kCommon, kLauncher};
    case ProcessKind::kWorker:
      return {kWorker};
  }
  return {};
}

// Supervisor: the common rules only, and every one fails with EPERM instead of killing. It runs inventory
// plug-ins (exec stays allowed) and they inherit its filter: arbitrary programs may probe a call and
// cope; a kill there would also take /metrics down, which is worse than a refused call. Keyrings stay
// allowed for plug-ins that authenticate with Kerberos.
DenyAction for_kind(ProcessKind kind, DenyAction a) {
  return kind == ProcessKind::kSupervisor && a == kKill ? kErrno : a;
}

const char* condition_text(Cond cond) {
  switch (cond) {
    case Cond::kAlways:
      return "";
    case Cond::kOpenForWrite:
      return "flags include O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_APPEND";
    case Cond::kCloneNamespace:
      return "flags include a CLONE_NEW* namespace";
    case Cond::kCloneProcess:
      return "flags lack CLONE_THREAD (a new process)";
    case Cond::kForeignTgkill:
      return "the target is another process";
  }
  return "";
}

uint32_t scmp_action(DenyAction a) {
  switch (a) {
    case DenyAction::kErrno:
      return SCMP_ACT_ERRNO(EPERM);
    case DenyAction::kNosys:
      return SCMP_ACT_ERRNO(ENOSYS);
    case DenyAction::kKill:
      return SCMP_ACT_KILL_PROCESS;
  }
  return SCMP_ACT_KILL_PROCESS;
}

int add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, Cond cond, pid_t self) {
  auto masked = [&](unsigned arg, uint64_t bit) {
    return seccomp_rule_add(ctx, action, nr, 1, SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, bit, bit));
  };
  switch (cond) {
    case Cond::kAlways:
      return seccomp_rule_add(ctx, action, nr, 0);
    case Cond::kOpenForWrite: {
      const unsigned arg = nr == SCMP_SYS(open) ? 1 : 2;
      for (uint64_t bit :
           {uint64_t(O_WRONLY), uint64_t(O_RDWR), uint64_t(O_CREAT), uint64_t(O_TRUNC), uint64_t(O_APPEND)})
        if (int rc = masked(arg, bit); rc != 0) return rc;
      return 0;
    }
    case Cond::kCloneNamespace:
      for (uint64_t bit :
           {uint64_t(CLONE_NEWNS), uint64_t(CLONE_NEWUTS), uint64_t(CLONE_NEWIPC), uint64_t(CLONE_NEWUSER),
            uint64_t(CLONE_NEWPID), uint64_t(CLONE_NEWNET), uint64_t(CLONE_NEWCGROUP)})
        if (int rc = masked(0, bit); rc != 0) return rc;
      return 0;
    case Cond::kCloneProcess:
      return seccomp_rule_add(ctx, action, nr, 1, SCMP_A0_64(SCMP_CMP_MASKED_EQ, uint64_t(CLONE_THREAD), 0));
    case Cond::kForeignTgkill:
      return seccomp_rule_add(ctx, action, nr, 1, SCMP_A0_64(SCMP_CMP_NE, uint64_t(self)));
  }
  return -EINVAL;
}

Status add_rules(scmp_filter_ctx ctx, std::span<const Rule> rules, ProcessKind kind, pid_t self) {
  for (const Rule& r : rules)
    for (const char* name : r.names) {
      if (!name) break;
      const int nr = seccomp_syscall_resolve_name(name);
      if (nr == __NR_SCMP_ERROR || nr < 0) continue;  // not a system call of this architecture
      if (int rc = add_rule(ctx, scmp_action(for_kind(kind, r.action)), nr, r.cond, self); rc != 0)
        return Error{fmt::format("seccomp rule for {}: {}", name, std::strerror(-rc))};
    }
  return {};
}

}  // namespace

const char* process_kind_name(ProcessKind kind) {
  switch (kind) {
    case ProcessKind::kSupervisor:
      return "supervisor";
    case ProcessKind::kLauncher:
      return "launcher";
    case ProcessKind::kWorker:
      return "worker";
  }
  return "?";
}

Status set_no_new_privs() {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Error{errno_text("PR_SET_NO_NEW_PRIVS")};
  return {};
}

Status set_non_dumpable() {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return Error{errno_text("PR_SET_DUMPABLE")};
  return {};
}

Status enter_empty_root() {
  if (unshare(CLONE_NEWNS) != 0) return Error{errno_text("unshare(CLONE_NEWNS)")};
  // Private: nothing mounted or unmounted here propagates back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return Error{errno_text("making / private")};
  // Any directory does as a mount point: the tmpfs hides it only in this namespace.
  const char* dir = "/tmp";
  struct stat st {};
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) dir = "/proc";
  if (mount("netprobe-empty", dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "size=4k,nr_inodes=4,mode=0555") != 0)
    return Error{errno_text("mounting an empty tmpfs")};
  if (chdir(dir) != 0) return Error{errno_text("chdir")};
  // pivot_root(".", "."): the old root ends up stacked on the new one and is detached right away, so that
  // nothing (not even a leaked directory descriptor's "..") leads back to the host's filesystem.
  if (syscall(SYS_pivot_root, ".", ".") == 0) {
    if (umount2(".", MNT_DETACH) != 0) return Error{errno_text("detaching the old root")};
  } else if (chroot(".") != 0) {  // the current root is not a mount point (some containers)
    return Error{errno_text("chroot")};
  }
  if (chdir("/") != 0) return Error{errno_text("chdir /")};
  return {};
}

std::vector<DeniedSyscall> seccomp_deny_list(ProcessKind kind) {
  std::vector<DeniedSyscall> out;
  for (std::span<const Rule> rules : own_rules(kind))
    for (const Rule& r : rules)
      for (const char* name : r.names) {
        if (!name) break;
        out.push_back(DeniedSyscall{name, condition_text(r.cond), for_kind(kind, r.action), r.why});
      }
  return out;
}

std::vector<DeniedSyscall> effective_deny_list(ProcessKind kind) {
  std::vector<DeniedSyscall> out = seccomp_deny_list(kind);
  if (kind == ProcessKind::kWorker) {
    auto inherited = seccomp_deny_list(ProcessKind::kLauncher);
    out.insert(out.begin(), inherited.begin(), inherited.end());
  }
  return out;
}

Status install_seccomp(ProcessKind kind) {
  if (auto s = set_no_new_privs(); !s.ok()) return s;
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) return Error{"seccomp_init failed"};
  // Other ABIs (i386 through int 0x80, x32) would go around the rules: none of them is allowed at all.
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1);
  const pid_t self = getpid();
  for (std::span<const Rule> rules : own_rules(kind))
    if (Status s = add_rules(ctx.get(), rules, kind, self); !s.ok()) return s;
  if (int rc = seccomp_load(ctx.get()); rc != 0)
    return Error{
        fmt::format("loading the {} seccomp filter: {}", process_kind_name(kind), std::strerror(-rc))};
  return {};
}

}  // namespace netprobe
