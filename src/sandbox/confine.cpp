#include "sandbox/confine.h"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

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

struct Rule {
  const char* name;
  Cond cond;
  DenyAction action;  // in the launcher and the workers; the supervisor turns kKill into kErrno
  const char* why;
};

constexpr DenyAction kKill = DenyAction::kKill;
constexpr DenyAction kErrno = DenyAction::kErrno;
constexpr DenyAction kNosys = DenyAction::kNosys;

constexpr const char* kWhyMemory = "reads or writes another process's memory";
constexpr const char* kWhyKernel =
    "a kernel interface netprobe never uses, and a frequent way into the kernel";
constexpr const char* kWhyMount = "changes the filesystem view";
constexpr const char* kWhyNamespace =
    "creates or joins namespaces (an unprivileged user namespace exposes kernel code meant for root)";
constexpr const char* kWhyAdmin = "administers the host";
constexpr const char* kWhyHandle = "opens files by handle, around path permissions";

// Every process: the kernel attack surface and host administration that no netprobe process (nor an
// inventory plug-in) needs.
constexpr Rule kCommon[] = {
    {"ptrace", Cond::kAlways, kKill, kWhyMemory},
    {"process_vm_readv", Cond::kAlways, kKill, kWhyMemory},
    {"process_vm_writev", Cond::kAlways, kKill, kWhyMemory},
    {"perf_event_open", Cond::kAlways, kKill, kWhyKernel},
    {"bpf", Cond::kAlways, kKill, kWhyKernel},
    {"userfaultfd", Cond::kAlways, kKill, kWhyKernel},
    {"io_uring_setup", Cond::kAlways, kKill, "a second system call interface that seccomp cannot see into"},
    {"io_uring_enter", Cond::kAlways, kKill, "a second system call interface that seccomp cannot see into"},
    {"io_uring_register", Cond::kAlways, kKill,
     "a second system call interface that seccomp cannot see into"},
    {"mount", Cond::kAlways, kKill, kWhyMount},
    {"umount2", Cond::kAlways, kKill, kWhyMount},
    {"pivot_root", Cond::kAlways, kKill, kWhyMount},
    {"chroot", Cond::kAlways, kKill, kWhyMount},
    {"fsopen", Cond::kAlways, kKill, kWhyMount},
    {"fsconfig", Cond::kAlways, kKill, kWhyMount},
    {"fsmount", Cond::kAlways, kKill, kWhyMount},
    {"fspick", Cond::kAlways, kKill, kWhyMount},
    {"move_mount", Cond::kAlways, kKill, kWhyMount},
    {"open_tree", Cond::kAlways, kKill, kWhyMount},
    {"mount_setattr", Cond::kAlways, kKill, kWhyMount},
    {"unshare", Cond::kAlways, kKill, kWhyNamespace},
    {"setns", Cond::kAlways, kKill, kWhyNamespace},
    {"clone", Cond::kCloneNamespace, kKill, kWhyNamespace},
    {"clone3", Cond::kAlways, kNosys,
     "its flags are in memory that seccomp cannot read; glibc falls back to clone(), whose flags are "
     "checked"},
    {"init_module", Cond::kAlways, kKill, kWhyAdmin},
    {"finit_module", Cond::kAlways, kKill, kWhyAdmin},
    {"delete_module", Cond::kAlways, kKill, kWhyAdmin},
    {"kexec_load", Cond::kAlways, kKill, kWhyAdmin},
    {"kexec_file_load", Cond::kAlways, kKill, kWhyAdmin},
    {"reboot", Cond::kAlways, kKill, kWhyAdmin},
    {"swapon", Cond::kAlways, kKill, kWhyAdmin},
    {"swapoff", Cond::kAlways, kKill, kWhyAdmin},
    {"acct", Cond::kAlways, kKill, kWhyAdmin},
    {"quotactl", Cond::kAlways, kKill, kWhyAdmin},
    {"quotactl_fd", Cond::kAlways, kKill, kWhyAdmin},
    {"syslog", Cond::kAlways, kKill, kWhyAdmin},
    {"iopl", Cond::kAlways, kKill, kWhyAdmin},
    {"ioperm", Cond::kAlways, kKill, kWhyAdmin},
    {"uselib", Cond::kAlways, kKill, kWhyAdmin},
    {"vhangup", Cond::kAlways, kKill, kWhyAdmin},
    {"lookup_dcookie", Cond::kAlways, kKill, kWhyAdmin},
    {"settimeofday", Cond::kAlways, kKill, kWhyAdmin},
    {"clock_settime", Cond::kAlways, kKill, kWhyAdmin},
    {"sethostname", Cond::kAlways, kKill, kWhyAdmin},
    {"setdomainname", Cond::kAlways, kKill, kWhyAdmin},
    {"open_by_handle_at", Cond::kAlways, kKill, kWhyHandle},
    {"name_to_handle_at", Cond::kAlways, kKill, kWhyHandle},
};

constexpr const char* kWhyExec = "the launcher and the workers never run a program";
constexpr const char* kWhyKeys = "kernel keyrings: never used by the launcher and the workers";
constexpr const char* kWhyIds = "their identity is fixed once started";
constexpr const char* kWhyServe = "they serve nothing: only the supervisor listens (/metrics)";
constexpr const char* kWhyWrite = "they write no file (their root is an empty read-only tmpfs anyway)";

// The launcher, and every worker through it (filters are inherited across fork).
constexpr Rule kLauncher[] = {
    {"execve", Cond::kAlways, kKill, kWhyExec},
    {"execveat", Cond::kAlways, kKill, kWhyExec},
    {"keyctl", Cond::kAlways, kKill, kWhyKeys},
    {"add_key", Cond::kAlways, kKill, kWhyKeys},
    {"request_key", Cond::kAlways, kKill, kWhyKeys},
    {"setuid", Cond::kAlways, kKill, kWhyIds},
    {"setgid", Cond::kAlways, kKill, kWhyIds},
    {"setreuid", Cond::kAlways, kKill, kWhyIds},
    {"setregid", Cond::kAlways, kKill, kWhyIds},
    {"setresuid", Cond::kAlways, kKill, kWhyIds},
    {"setresgid", Cond::kAlways, kKill, kWhyIds},
    {"setgroups", Cond::kAlways, kKill, kWhyIds},
    {"setfsuid", Cond::kAlways, kKill, kWhyIds},
    {"setfsgid", Cond::kAlways, kKill, kWhyIds},
    {"listen", Cond::kAlways, kKill, kWhyServe},
    {"accept", Cond::kAlways, kKill, kWhyServe},
    {"accept4", Cond::kAlways, kKill, kWhyServe},
    // EPERM rather than a kill: a library may try to open or create a file and cope with a refusal.
    {"open", Cond::kOpenForWrite, kErrno, kWhyWrite},
    {"openat", Cond::kOpenForWrite, kErrno, kWhyWrite},
    {"openat2", Cond::kAlways, kNosys,
     "its flags are in memory that seccomp cannot read; glibc uses openat()"},
    {"creat", Cond::kAlways, kErrno, kWhyWrite},
    {"truncate", Cond::kAlways, kErrno, kWhyWrite},
    {"unlink", Cond::kAlways, kErrno, kWhyWrite},
    {"unlinkat", Cond::kAlways, kErrno, kWhyWrite},
    {"rename", Cond::kAlways, kErrno, kWhyWrite},
    {"renameat", Cond::kAlways, kErrno, kWhyWrite},
    {"renameat2", Cond::kAlways, kErrno, kWhyWrite},
    {"mkdir", Cond::kAlways, kErrno, kWhyWrite},
    {"mkdirat", Cond::kAlways, kErrno, kWhyWrite},
    {"rmdir", Cond::kAlways, kErrno, kWhyWrite},
    {"link", Cond::kAlways, kErrno, kWhyWrite},
    {"linkat", Cond::kAlways, kErrno, kWhyWrite},
    {"symlink", Cond::kAlways, kErrno, kWhyWrite},
    {"symlinkat", Cond::kAlways, kErrno, kWhyWrite},
    {"chmod", Cond::kAlways, kErrno, kWhyWrite},
    {"fchmodat", Cond::kAlways, kErrno, kWhyWrite},
    {"chown", Cond::kAlways, kErrno, kWhyWrite},
    {"lchown", Cond::kAlways, kErrno, kWhyWrite},
    {"fchownat", Cond::kAlways, kErrno, kWhyWrite},
    {"mknod", Cond::kAlways, kErrno, kWhyWrite},
    {"mknodat", Cond::kAlways, kErrno, kWhyWrite},
    {"setxattr", Cond::kAlways, kErrno, kWhyWrite},
    {"lsetxattr", Cond::kAlways, kErrno, kWhyWrite},
    {"removexattr", Cond::kAlways, kErrno, kWhyWrite},
    {"lremovexattr", Cond::kAlways, kErrno, kWhyWrite},
    {"utime", Cond::kAlways, kErrno, kWhyWrite},
    {"utimes", Cond::kAlways, kErrno, kWhyWrite},
    {"utimensat", Cond::kAlways, kErrno, kWhyWrite},
    {"futimesat", Cond::kAlways, kErrno, kWhyWrite},
};

constexpr const char* kWhyProcess = "a worker starts no process (it has its threads already)";
constexpr const char* kWhySignal = "a worker signals only itself (abort, its own threads)";

// A worker, on top of its launcher's rules, once its sockets are open and its capabilities dropped.
constexpr Rule kWorker[] = {
    {"fork", Cond::kAlways, kKill, kWhyProcess},
    {"vfork", Cond::kAlways, kKill, kWhyProcess},
    {"clone", Cond::kCloneProcess, kKill, kWhyProcess},
    {"capset", Cond::kAlways, kKill, "its capabilities are dropped for good"},
    {"kill", Cond::kAlways, kKill, kWhySignal},
    {"tkill", Cond::kAlways, kKill, kWhySignal},
    {"tgkill", Cond::kForeignTgkill, kKill, kWhySignal},
    {"pidfd_open", Cond::kAlways, kKill, kWhySignal},
    {"pidfd_send_signal", Cond::kAlways, kKill, kWhySignal},
    {"pidfd_getfd", Cond::kAlways, kKill, kWhyMemory},
};

// Supervisor: the common rules only, and every one fails with EPERM instead of killing. It runs inventory
// plug-ins (exec stays allowed) and they inherit its filter: arbitrary programs may probe a call and
// cope; a kill there would also take /metrics down, which is worse than a refused call. Keyrings stay
// allowed for plug-ins that authenticate with Kerberos.
DenyAction for_kind(ProcessKind kind, DenyAction a) {
  return kind == ProcessKind::kSupervisor && a == kKill ? kErrno : a;
}

template <size_t N>
void append(std::vector<DeniedSyscall>& out, const Rule (&rules)[N], ProcessKind kind) {
  for (const auto& r : rules) {
    std::string cond;
    switch (r.cond) {
      case Cond::kAlways:
        break;
      case Cond::kOpenForWrite:
        cond = "flags include O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_APPEND";
        break;
      case Cond::kCloneNamespace:
        cond = "flags include a CLONE_NEW* namespace";
        break;
      case Cond::kCloneProcess:
        cond = "flags lack CLONE_THREAD (a new process)";
        break;
      case Cond::kForeignTgkill:
        cond = "the target is another process";
        break;
    }
    out.push_back(DeniedSyscall{r.name, std::move(cond), for_kind(kind, r.action), r.why});
  }
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

template <size_t N>
Status add_rules(scmp_filter_ctx ctx, const Rule (&rules)[N], ProcessKind kind, pid_t self) {
  for (const auto& r : rules) {
    const int nr = seccomp_syscall_resolve_name(r.name);
    if (nr == __NR_SCMP_ERROR || nr < 0) continue;  // not a system call of this architecture
    if (int rc = add_rule(ctx, scmp_action(for_kind(kind, r.action)), nr, r.cond, self); rc != 0)
      return Error{fmt::format("seccomp rule for {}: {}", r.name, std::strerror(-rc))};
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
  switch (kind) {
    case ProcessKind::kSupervisor:
      append(out, kCommon, kind);
      break;
    case ProcessKind::kLauncher:
      append(out, kCommon, kind);
      append(out, kLauncher, kind);
      break;
    case ProcessKind::kWorker:
      append(out, kWorker, kind);
      break;
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
  Status s;
  switch (kind) {
    case ProcessKind::kSupervisor:
      s = add_rules(ctx.get(), kCommon, kind, self);
      break;
    case ProcessKind::kLauncher:
      s = add_rules(ctx.get(), kCommon, kind, self);
      if (s.ok()) s = add_rules(ctx.get(), kLauncher, kind, self);
      break;
    case ProcessKind::kWorker:
      s = add_rules(ctx.get(), kWorker, kind, self);
      break;
  }
  if (!s.ok()) return s;
  if (int rc = seccomp_load(ctx.get()); rc != 0)
    return Error{
        fmt::format("loading the {} seccomp filter: {}", process_kind_name(kind), std::strerror(-rc))};
  return {};
}

}  // namespace netprobe
